"""What the doctor saves of every page it visits, so an owner can share it: the rendered HTML, a
full-page screenshot, Playwright's ARIA snapshot (`<page>.html`, `.png`, `.aria.yml`) and a
`manifest.json` listing the pages, their URLs, and which elements matched or missed.

Secrets never reach a file: the account's credentials, the browser's cookie values and the
token-like values of URLs (query or fragment parameters such as `t=`, `token=`, `code=`, or any
long random-looking value) are replaced by `***` everywhere, masked or not. With `mask` the
texts people wrote and their names go too: in the HTML and the ARIA snapshot every text inside
a message, an inbox item or a conversation header becomes `masked-text-N` / `masked-name-N`
(the same text always the same placeholder, so the manifest's `hints` still let
`doctor --html` find messages by text), any other occurrence of a known text or name is replaced
the same way, and the screenshot blacks those elements and every form field out (Playwright's
`mask=`). Times and dates are kept (they are structure, not content).
"""
from __future__ import annotations

import html
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

SECRET = "***"
_TOKEN_PARAMS = {"t", "token", "auth", "code", "session", "sid", "key", "sig", "signature",
                 "access_token", "id_token", "refresh_token", "state", "nonce", "ticket", "otp",
                 "password", "pass", "pw", "secret", "jwt", "handoff"}
_RANDOMISH = re.compile(r"^[A-Za-z0-9_\-.~+/=%]{16,}$")
_TIMEISH = re.compile(r"^[\d\s:.,/\-]*(am|pm|AM|PM)?[\d\s:.,/\-]*$")


def _secret_value(name: str, value: str) -> bool:
    return bool(value) and (name.lower() in _TOKEN_PARAMS or bool(_RANDOMISH.match(value))
                            and any(c.isdigit() for c in value) and any(c.isalpha() for c in value))


def url_secrets(url: str) -> list[str]:
    """The values in a URL that are tokens (query and fragment parameters, user info)."""
    parts = urllib.parse.urlsplit(url)
    found = [v for v in (parts.username, parts.password) if v]
    for chunk in (parts.query, parts.fragment.partition("?")[2] or
                  (parts.fragment if "=" in parts.fragment else "")):
        for name, value in urllib.parse.parse_qsl(chunk, keep_blank_values=False):
            if _secret_value(name, value):
                found.append(value)
    return found


@dataclass
class Masker:
    """Replaces secrets (always) and, with `private`, the texts and names people wrote."""
    private: bool = False
    secrets: set[str] = field(default_factory=set)
    texts: dict[str, str] = field(default_factory=dict)     # original -> placeholder
    names: dict[str, str] = field(default_factory=dict)

    def secret(self, *values: str | None) -> None:
        self.secrets.update(v for v in values if v and len(v) >= 4)

    def url(self, url: str) -> str:
        self.secret(*url_secrets(url))
        return self.apply(url)

    def known(self, texts: list[str] = (), names: list[str] = ()) -> None:
        for t in texts:
            t = " ".join(t.split())
            if t and t not in self.texts:
                self.texts[t] = f"masked-text-{len(self.texts) + 1}"
        for n in names:
            n = " ".join(n.split())
            if n and n not in self.names:
                self.names[n] = f"masked-name-{len(self.names) + 1}"

    def replacements(self) -> list[tuple[str, str]]:
        pairs = [(s, SECRET) for s in self.secrets]
        if self.private:
            pairs += list(self.texts.items()) + list(self.names.items())
        out = []
        for old, new in pairs:
            variants = {old, html.escape(old), html.escape(old, quote=False), json.dumps(old)[1:-1],
                        urllib.parse.quote(old), urllib.parse.quote_plus(old)}
            out += [(v, new) for v in variants if v]
        return sorted(set(out), key=lambda p: -len(p[0]))

    def apply(self, text: str) -> str:
        """`text` with every secret and (masked) private string replaced. A short private string
        ("Ann", "ok") is replaced as a whole word outside tags only: a plain replace would break
        markup and words that contain it."""
        short = []
        for old, new in self.replacements():
            if len(old) >= 6 or new == SECRET:
                text = text.replace(old, new)
            elif len(old) >= 3:
                short.append((re.compile(r"(?<!\w)" + re.escape(old) + r"(?!\w)"), new))
        if short:
            parts = re.split(r"(<[^>]*>)", text)
            for i in range(0, len(parts), 2):   # the text between tags
                for pattern, new in short:
                    parts[i] = pattern.sub(new, parts[i])
            text = "".join(parts)
        return text

    def hints(self) -> dict[str, list[str]]:
        """The texts and names as the saved files spell them (placeholders when masked)."""
        if self.private:
            return {"texts": list(self.texts.values()), "names": list(self.names.values())}
        return {"texts": list(self.texts), "names": list(self.names)}


_MASK_DOM_JS = r"""
(a) => {
  const norm = s => (s || '').replace(/\s+/g, ' ').trim();
  let n = 0;
  for (const sel of a.containers) {
    let els; try { els = document.querySelectorAll(sel); } catch (e) { continue; }
    for (const el of els) {
      const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
      const nodes = []; while (walk.nextNode()) nodes.push(walk.currentNode);
      for (const t of nodes) {
        const v = norm(t.nodeValue);
        if (!v || a.keep.test(v) || /^(Sent: )?masked-(text|name)-\d+$/.test(v)) continue;
        t.nodeValue = a.map[v] || a.map[v.replace(/^Sent: /, '')] || ('masked-' + (++n));
      }
      for (const e of [el, ...el.querySelectorAll('*')])
        for (const attr of ['title', 'aria-label', 'alt', 'value'])
          if (e.hasAttribute(attr) && !a.keep.test(norm(e.getAttribute(attr)))) e.setAttribute(attr, 'masked');
    }
  }
  for (const f of document.querySelectorAll('input, textarea')) { f.removeAttribute('value'); if (f.tagName === 'TEXTAREA') f.textContent = ''; }
}
"""


async def save_page(page, scratch, out: Path, name: str, masker: Masker,
                    containers: list[str]) -> dict[str, str]:
    """Save `page` as `name` (HTML, screenshot, ARIA snapshot) masked by `masker`; `scratch` is a
    page with scripts off where the copy is masked. Returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    content = await page.content()
    if masker.private:
        await scratch.set_content(masker.apply(content))
        mapping = {**masker.texts, **masker.names}
        await scratch.evaluate(_MASK_DOM_JS.replace("a.keep", "new RegExp(a.keep)"),
                               {"containers": containers, "map": mapping, "keep": _TIMEISH.pattern})
        content = await scratch.content()
        aria = await scratch.locator("body").aria_snapshot()
        hide = [page.locator(s) for s in containers] + [page.locator("input, textarea, [contenteditable]")]
        hide += [page.get_by_text(t, exact=False) for t in [*masker.texts, *masker.names] if len(t) <= 200]
    else:
        aria = await page.locator("body").aria_snapshot()
        hide = [page.locator("input[type=password]")]
    hide += [page.get_by_text(s) for s in masker.secrets if len(s) <= 200]   # a shown e-mail...
    files = {"html": f"{name}.html", "png": f"{name}.png", "aria": f"{name}.aria.yml"}
    await page.screenshot(path=str(out / files["png"]), full_page=True, mask=hide)
    (out / files["html"]).write_text(masker.apply(content), encoding="utf-8")
    (out / files["aria"]).write_text(masker.apply(aria), encoding="utf-8")
    return files


def write_manifest(out: Path, manifest: dict, masker: Masker) -> Path:
    path = out / "manifest.json"
    path.write_text(masker.apply(json.dumps(manifest, indent=2, ensure_ascii=False)), encoding="utf-8")
    return path


def read_manifest(folder: Path) -> dict | None:
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SystemExit(f"doctor: {path} is not valid JSON ({exc})") from None
