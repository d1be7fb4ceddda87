"""The in-page half of the doctor's suggestions (supervisor/suggest.py has the pure half): find on
a page the elements a missing selector meant, list candidate selectors for them, and check each
candidate matches exactly those elements. Works on a live page and on a captured one loaded with
its scripts off. Found elements are marked with a JS property (never an attribute): nothing in
the page's HTML changes."""
from __future__ import annotations

import re
import secrets

from playwright.async_api import Error as PlaywrightError

from supervisor.suggest import FIELD_ELEMENTS, PLAIN_CSS, Candidate, rank, relaxed

_FIND_JS = r"""
(a) => {
  const norm = s => (s || '').replace(/\s+/g, ' ').trim();
  const all = (sel, root) => { try { return [...(root || document).querySelectorAll(sel)]; } catch (e) { return []; } };
  const rel = new Set(a.relaxed.flatMap(s => all(s)));
  const prefer = (els) => { const r = els.filter(e => rel.has(e)); return r.length ? r : els; };
  const inputs = 'input:not([type=hidden]):not([type=password]):not([type=submit]):not([type=button])'
               + ':not([type=checkbox]):not([type=radio])';
  const pw = all('input[type=password]')[0];
  const boxOf = (el, want) => { let c = el; while (c && c.parentElement && !c.querySelector(want)) c = c.parentElement; return c; };
  const loginBox = pw ? (pw.closest('form') || boxOf(pw.parentElement, inputs)) : null;
  const before = (x, y) => !!(x.compareDocumentPosition(y) & Node.DOCUMENT_POSITION_FOLLOWING);
  const deepest = (root, texts) => {
    const hits = [];
    for (const el of all('*', root)) {
      const t = norm(el.textContent);
      if (texts.includes(t) && ![...el.children].some(c => norm(c.textContent) === t)) hits.push(el);
    }
    return hits;
  };
  const longest = u => {   // no text known: the innermost element holding most of the message's text
    let best, len = 0;
    for (const e of all('*', u)) {
      if (e.matches('time, [datetime], [data-timestamp], button, a') || [...e.children].some(c => norm(c.textContent) === norm(e.textContent))) continue;
      const n = norm(e.textContent).length;
      if (n > len) { best = e; len = n; }
    }
    return best;
  };
  const clickables = 'button, input[type=submit], input[type=button], [role=button], a';
  const find = {
    login_password: () => pw ? [pw] : [],
    login_username: () => {
      if (!loginBox) return [];
      const c = all(inputs, loginBox).filter(e => before(e, pw));
      return c.length ? [c[c.length - 1]] : [];
    },
    login_submit: () => {
      if (!loginBox) return [];
      const c = all(clickables, loginBox).filter(e => !before(e, pw));
      const best = c.filter(e => e.type === 'submit' || /log ?in|sign ?in|continue|submit/i.test(norm(e.textContent) + ' ' + (e.value || '')));
      return (best.length ? best : c).slice(0, 1);
    },
    logged_out: () => loginBox ? [loginBox] : [],
    popup_close: () => {
      const c = all('[role=dialog], [aria-modal=true], dialog, .modal').flatMap(d => all(clickables + ', [onclick]', d));
      const best = c.filter(e => /close|dismiss|not now|later|no thanks|^\u00d7$|^x$/i.test(norm(e.textContent) + ' ' + (e.getAttribute('aria-label') || '')));
      return (best.length ? best : c).slice(0, 1);
    },
    reply_box: () => {
      const c = all('textarea, [contenteditable=""], [contenteditable=true], [role=textbox], ' + inputs)
        .filter(e => !(loginBox && loginBox.contains(e)) && !(e.parentElement && e.parentElement.closest('[contenteditable]')));
      const p = prefer(c);
      return p.length ? [p[p.length - 1]] : [];
    },
    send_button: () => {
      const box = find.reply_box()[0];
      if (!box) return [];
      const c = all(clickables, boxOf(box, 'button, input[type=submit], [role=button]'));
      const best = c.filter(e => e.type === 'submit' || /send/i.test(norm(e.textContent) + ' ' + (e.getAttribute('aria-label') || '') + ' ' + (e.value || '')));
      return (best.length ? best : c).slice(0, 1);
    },
    older_messages: () => prefer(all('a, button, [role=button]').filter(e =>
      /before=|older|earlier|previous/i.test((e.getAttribute('href') || '') + ' ' + norm(e.textContent)) || e.rel === 'prev')).slice(0, 1),
    conversation_start: () => all('body *').filter(e => !e.children.length
      && /beginning of|start of (your|the|this) conversation|no (older|earlier) messages/i.test(norm(e.textContent))).slice(0, 1),
    conversation_contact: () => {
      const hs = all('h1, h2, h3, h4, h5, h6, [role=heading]').filter(e => a.names.includes(norm(e.textContent)));
      const c = hs.length ? hs : deepest(document, a.names);
      return prefer(c).slice(0, 1);
    },
    inbox_item: () => {
      const re = new RegExp(a.route + '$');
      const links = all('a[href]').filter(l => {
        try { const u = new URL(l.getAttribute('href'), 'http://doctor.invalid/'); return re.test(u.pathname + u.search + u.hash); }
        catch (e) { return false; }
      });
      const routeLinks = new Set(links);
      const countIn = el => all('a[href]', el).filter(x => routeLinks.has(x)).length + (routeLinks.has(el) ? 1 : 0);
      return [...new Set(links.map(l => {
        let best = null;
        for (let e = l; e && e !== document.body; e = e.parentElement) {
          if (countIn(e) > 1) break;
          if (rel.has(e)) { best = e; break; }
          if (!best && (e.tagName === 'LI' || e.getAttribute('role') === 'listitem' || e.tagName === 'ARTICLE')) best = e;
        }
        return best || l;
      }))];
    },
    message: () => {
      const hits = deepest(document, a.texts);
      const holds = el => hits.filter(h => el.contains(h)).length;
      return [...new Set(hits.map(h => {
        let unit = h;
        for (let e = h.parentElement; e && e !== document.body && holds(e) === 1; e = e.parentElement) unit = e;
        if (hits.length < 2) {   // one known text: climb to where siblings repeat
          unit = h;
          while (unit.parentElement && unit.parentElement !== document.body
                 && [...unit.parentElement.children].filter(s => s.tagName === unit.tagName).length < 2) unit = unit.parentElement;
        }
        return unit;
      }))];
    },
  };
  const field = {
    message_text: u => deepest(u, a.texts)[0] || (a.texts.length ? undefined : longest(u)),
    message_sender: u => deepest(u, a.names)[0],
    message_time: u => all('time, [datetime], [data-timestamp]', u)[0] || (u.matches('[datetime], [data-timestamp]') ? u : undefined),
  };
  let targets = [], parents = [];
  if (a.scope !== null) {
    const f = field[a.element];
    for (const u of (f ? all(a.scope) : [])) { const t = f(u); if (t && t !== u) targets.push(t); }
  } else if (find[a.element]) {
    targets = find[a.element]();
  } else {   // an element this doctor has no rule for: the old selectors' shape, or a known text
    const r = [...rel];
    targets = r.length === 1 ? r : prefer(deepest(document, a.texts.concat(a.names))).slice(0, 1);
  }
  for (const t of targets) { t.__doctor = a.token; if (t.parentElement) t.parentElement.__doctorParent = a.token; }
  return targets.length;
}
"""

_CANDIDATES_JS = r"""
(a) => {
  const T = [];
  for (const el of document.querySelectorAll('*')) if (el.__doctor === a.token) T.push(el);
  if (!T.length) return [];
  const q = v => "'" + v.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";
  const t0 = T[0], tag = t0.tagName.toLowerCase(), out = [];
  const push = (selector, kind) => out.push({selector, kind});
  const same = name => T.every(t => t.getAttribute(name) === t0.getAttribute(name));
  const norm = s => (s || '').replace(/\s+/g, ' ').trim();
  if (T.length === 1 && t0.id) push('#' + CSS.escape(t0.id), 'id');
  for (const {name, value} of t0.attributes) {
    if (!value && !name.startsWith('data-')) continue;
    if (/^data-(testid|test-id|test|qa|cy|e2e|automation-id|test-[\w-]+)$/.test(name)) {
      if (same(name)) { push(`[${name}=${q(value)}]`, 'test id'); push(`${tag}[${name}=${q(value)}]`, 'test id'); }
    } else if (name.startsWith('data-')) {
      if (same(name) && value && value.length <= 24 && !/\d/.test(value)) push(`${tag}[${name}=${q(value)}]`, 'data attribute');
      else if (T.length > 1 || !value) push(`${tag}[${name}]`, 'data attribute');
    } else if (name === 'name' && same(name)) push(`${tag}[name=${q(value)}]`, 'name');
    else if (name === 'placeholder' && same(name)) push(`${tag}[placeholder=${q(value)}]`, 'placeholder');
    else if (name === 'aria-label' && same(name)) {
      push(`[aria-label=${q(value)}]`, 'aria-label'); push(`${tag}[aria-label=${q(value)}]`, 'aria-label');
      if (t0.getAttribute('role') && same('role')) push(`[role=${q(t0.getAttribute('role'))}][aria-label=${q(value)}]`, 'role + name');
    } else if (name === 'role' && same(name)) {
      const p = t0.parentElement && t0.parentElement.getAttribute('role');
      if (p && T.every(t => t.parentElement && t.parentElement.getAttribute('role') === p)) push(`[role=${q(p)}] > [role=${q(value)}]`, 'role + name');
      push(`[role=${q(value)}]`, 'structure');
    } else if (name === 'type' && same(name)) push(`${tag}[type=${q(value)}]`, 'structure');
  }
  if (!a.plain && ['button', 'a'].includes(tag) || t0.getAttribute('role') === 'button') {
    const text = norm(t0.textContent);
    if (text && text.length <= 40 && T.every(t => norm(t.textContent) === text)) push(`${tag}:text-is(${q(text)})`, 'role + name');
  }
  for (const c of t0.classList) if (T.every(t => t.classList.contains(c))) push(`${tag}.${CSS.escape(c)}`, 'stable class');
  for (let e = t0.parentElement, depth = 0; e && e !== document.body && depth < 8; e = e.parentElement, depth++) {
    if (!T.every(t => e.contains(t))) break;
    const hooks = [];
    if (e.id) hooks.push('#' + CSS.escape(e.id));
    for (const {name, value} of e.attributes) if (/^data-(testid|test|qa|cy)$/.test(name)) hooks.push(`[${name}=${q(value)}]`);
    for (const c of e.classList) hooks.push(`${e.tagName.toLowerCase()}.${CSS.escape(c)}`);
    if (e.getAttribute('role')) hooks.push(`[role=${q(e.getAttribute('role'))}]`);
    for (const h of hooks) { push(`${h} ${tag}`, 'structure'); if (e === t0.parentElement) push(`${h} > ${tag}`, 'structure'); }
  }
  push(tag, 'structure');
  return out;
}
"""

_CHECK_PAGE_JS = "(els, t) => [els.length, els.filter(e => e.__doctor === t).length, " \
                 "els.filter(e => e.parentElement && e.parentElement.__doctorParent === t).length]"

_CHECK_FIELD_JS = r"""
(a) => {
  let units;
  try { units = [...document.querySelectorAll(a.scope)]; document.querySelectorAll(a.sel); } catch (e) { return -1; }
  for (const u of units) {
    const m = u.querySelector(a.sel);
    if (!m) return -1;
    const t = [...u.querySelectorAll('*')].find(e => e.__doctor === a.token);
    if (t && t !== m) return -1;
  }
  return units.length;
}
"""


def route_pattern(path: str) -> str:
    """A JS regex source for the conversation route (`/chat/{conversation_id}`, a fragment route
    `#chat/member/{conversation_id}/chat` or an absolute URL), matched against the end of
    pathname + search + hash."""
    path = re.sub(r"^([a-z]+://[^/#?]*|\{[a-z0-9_]+\})", "", path)
    return re.escape(path).replace(re.escape("{conversation_id}"), "[^/?#]+")


async def suggest(page, spec, element: str, *, texts: list[str], names: list[str],
                  scope: str | None = None) -> tuple[int, list[Candidate]]:
    """(how many elements the missing `element` was found as, checked candidates best first).
    `scope`: for a message field, the selector of the messages it is looked for in."""
    el = spec.element(element)
    token = secrets.token_hex(6)
    if element in FIELD_ELEMENTS and scope is None:
        return 0, []
    args = {"element": element, "token": token, "texts": texts, "names": names,
            "relaxed": [r for s in (el.selectors if el else []) if (r := relaxed(s)) and r != s],
            "route": route_pattern(spec.paths["conversation"]),
            "scope": scope if element in FIELD_ELEMENTS else None}
    found = await page.evaluate(_FIND_JS, args)
    if not found:
        return 0, []
    raw = await page.evaluate(_CANDIDATES_JS, {"token": token, "plain": element in PLAIN_CSS,
                                               "scope": args["scope"]})
    checked = []
    for c in rank([Candidate(r["selector"], r["kind"]) for r in raw], texts + names):
        n = await _check(page, c.selector, token, found, args["scope"], open_ended=element == "message")
        if n:
            checked.append(Candidate(c.selector, c.kind, n))
    return found, checked


async def _check(page, selector: str, token: str, found: int, scope: str | None, *,
                 open_ended: bool) -> int:
    """How many it matched when it matches exactly the elements found (0 otherwise)."""
    try:
        if scope is not None:
            n = await page.evaluate(_CHECK_FIELD_JS, {"scope": scope, "sel": selector, "token": token})
            return max(n, 0)
        total, marked, siblings = await page.locator(selector).evaluate_all(_CHECK_PAGE_JS, token)
    except PlaywrightError:  # not a selector this page's engine takes
        return 0
    if marked != found:
        return 0
    if open_ended:  # messages with no known text: siblings of the known ones, nothing else
        return total if siblings == total else 0
    return total if total == found else 0


async def clear_marks(page) -> None:
    await page.evaluate("() => { for (const e of document.querySelectorAll('*')) "
                        "{ delete e.__doctor; delete e.__doctorParent; } }")
