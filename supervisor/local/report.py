"""What `up` says about itself: the status it writes to var/run/status.json every few seconds
(read by `./run status`, which needs no Ray), and the banner it prints once running."""
from __future__ import annotations

import json
import os
import time
from typing import Any

from contracts import telemetry
from contracts.settings import Config
from supervisor.local.paths import Paths


def login_command(account_id: str) -> str:
    return f"./run login {account_id}   (or: ./run login {account_id} --import state.json)"


def snapshot(sup_status: dict[str, Any], config: Config, drafts_waiting: int) -> dict[str, Any]:
    """The supervisor's status boiled down to what a person acts on (secrets masked)."""
    children = sup_status["children"]
    accounts = []
    for c in children:
        if c["kind"] != "browser":
            continue
        state = c.get("status") or c["state"]
        reason = (c.get("info") or {}).get("health", {}).get("reason") if state == "needs_login" else None
        accounts.append({"account": c["account_id"], "state": state, "restarts": c["restarts"],
                         "last_error": telemetry.redact(reason or c.get("last_error") or "") or None,
                         "login_command": login_command(c["account_id"]) if state == "needs_login" else None})
    errors = [(c["name"], c["last_error"]) for c in children if c.get("last_error")]
    return {"children": {c["name"]: c["state"] for c in children}, "accounts": accounts,
            "drafts_waiting": drafts_waiting, "failed": sup_status["failed"],
            "last_error": (f"{errors[-1][0]}: {telemetry.redact(errors[-1][1])}" if errors else None)}


def write(paths: Paths, status: dict[str, Any]) -> None:
    """Atomically (a reader never sees half a file)."""
    tmp = paths.status_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({**status, "updated_at": time.time()}, indent=1))   # no secret in it
    os.replace(tmp, paths.status_file)


def read(paths: Paths) -> dict[str, Any] | None:
    try:
        return json.loads(paths.status_file.read_text())
    except (OSError, ValueError):
        return None


def account_lines(accounts: list[dict[str, Any]]) -> list[str]:
    out = []
    for a in accounts:
        line = f"  {a['account']}: {a['state']}"
        if a["restarts"]:
            line += f" (restarted {a['restarts']}x)"
        if a["state"] == "needs_login":
            line += f" -- a person must log in: {a['login_command']}"
        elif a["last_error"] and a["state"] != "running":
            line += f" -- {a['last_error'][:200]}"
        out.append(line)
    return out


def desk_link(status: dict[str, Any], token: str | None) -> str:
    """The desk's URL, opening signed in with `token` (never stored in the status file)."""
    url = status.get("desk_url")
    return f"{url}/#token={token}" if url and token else (url or "(desk disabled)")


def banner(status: dict[str, Any], token: str | None, first: bool = True) -> str:
    lines = [*([status["first_line"]] if first else []),
             f"review desk: {desk_link(status, token)}",
             *(f"  {e}" for e in status["embedded"]),
             f"logs: {status['logs']}",
             "accounts:", *account_lines(status["accounts"]),
             f"drafts waiting for review: {status['drafts_waiting']}"]
    lines.append("running; Ctrl-C stops everything" if not status.get("detached")
                 else "running in the background; `./run status` shows it, `./run down` stops it")
    return "\n".join(lines)


def status_text(paths: Paths, pid: int | None) -> str:
    st = read(paths)
    if pid is None:
        last = f" (last status {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(st['updated_at']))})" \
            if st else ""
        return f"replydesk is not running{last}; `./run up` starts it"
    if st is None or st.get("pid") != pid:
        return f"replydesk is starting (pid {pid}); see {paths.log_file}"
    age = time.time() - st["updated_at"]
    lines = [f"replydesk is {st['state']} (pid {pid}, up since "
             f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(st['started_at']))}; "
             f"status {age:.0f} s old)",
             st["first_line"], f"review desk: {st.get('desk_url')}",
             *(f"  {e}" for e in st.get("embedded", [])),
             f"actors: {', '.join(f'{n} {s}' for n, s in sorted(st.get('children', {}).items()))}",
             "accounts:", *account_lines(st.get("accounts", [])),
             f"drafts waiting for review: {st.get('drafts_waiting')}",
             f"last error: {st.get('last_error') or 'none'}"]
    return "\n".join(lines)
