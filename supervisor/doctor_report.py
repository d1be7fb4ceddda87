"""How the doctor prints its findings: the table of every element, then per element that missed
what was found and the checked candidates, and the YAML to paste into the site spec."""
from __future__ import annotations

from typing import TYPE_CHECKING

from supervisor.suggest import snippet

if TYPE_CHECKING:
    from contracts.sitespec import SiteConf
    from supervisor.doctor_checks import Row


def format_table(rows: list[Row]) -> str:
    lines = [f"{'element':<20} {'page':<12} {'req':<4} {'n':>3}  {'matched selector':<44} samples / problem"]
    for r in rows:
        status = "FAIL" if r.failed else ("warn" if r.problem else "ok")
        detail = r.problem if r.problem else "; ".join(r.samples)
        lines.append(f"{r.element:<20} {r.page:<12} {'yes' if r.required else 'no':<4} {r.count:>3}  "
                     f"{(r.selector or '-')[:44]:<44} {status}: {detail}")
    return "\n".join(lines)


def format_suggestions(spec: SiteConf, rows: list[Row]) -> str:
    """Per element that missed: what was found and the checked candidates; then the YAML."""
    lines, best = [], {}
    for r in rows:
        if not r.problem or r.element == "message_direction" or r.element in best:
            continue
        if not r.suggestions:
            if r.failed:
                lines.append(f"{r.element}: no candidate found on the {r.page} page (name a text or a "
                             "contact on it with --text / --name, or look at the saved HTML)")
            continue
        best[r.element] = r.suggestions
        lines.append(f"{r.element}: found {r.found} on the {r.page} page; checked candidates:")
        lines += [f"    {c.selector:<56} {c.kind} ({c.count} match{'es' if c.count != 1 else ''})"
                  for c in r.suggestions[:5]]
    yaml_text = snippet(spec, best)
    if yaml_text:
        lines += ["", "Paste into the site spec (each replaces that element's line):", yaml_text]
    return "\n".join(lines)
