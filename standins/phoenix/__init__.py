"""`phoenix`: a stand-in of the real MeetMe single-page app, built from what public code shows of
it (/work/shared/meetme-evidence.md, summarised in the contract the shipped
conf/sites/meetme.yaml reads). Tags below: [evidence] = public code that ran against the real
site shows it; [unverified] = the evidence is silent and this is what chat SPAs commonly do.

Hosts and pages
- Two origins from one process and event loop, with different host names so cookies differ:
  www `http://localhost:<port_www>` (start page and login) and app `http://127.0.0.1:<port_app>`
  (after login) [evidence: www.meetme.com and beta.meetme.com].
- Routes are URL fragments: www `/#home`; app `#meet` (landing after login), inbox `#chat`,
  conversation `#chat/member/<numeric id>/chat` [evidence]. Conversation ids are numeric member
  ids [evidence]; `inject` refuses others.
- Every page load returns an empty shell (`#global-layer-main-content` plus one script,
  static/phoenix.js) [evidence]; the script renders from the JSON API (`/api/...`), whose reads
  answer after `render_delay_ms` (default 300 ms) [unverified: the delay]. Hash changes re-render
  without a page load [evidence: hash routing].

Login
- `#marketing-header-login .btn-black` opens a modal with `#site-login-modal-email`,
  `#site-login-modal-password` and `#site-login-modal-submit-group > button`; Enter in a field
  submits (a form's implicit submission) [evidence: selectors; unverified: Enter].
- Wrong credentials: `.error-message` in the modal [evidence: selector; unverified: text].
- Success: a one-time handoff to the app host (`/auth?t=TOKEN` sets the app's cookie and
  redirects to `/#meet`), which shows `#phoenix-topbar` with `#user-menu` [evidence: the host
  change, `#meet` and the markers; unverified: the token mechanism].
- The app host without a session goes to www `/#home` [unverified].
- Faults: `login_bounce` (N): a correct login lands on www `/#home`, no error [evidence: 21 of
  ~47 logged real attempts]; `challenge` (chatsite's, a kind): `[data-testid=login-challenge]`
  instead of logging in [unverified: no challenge appears in the logs].

Popups
- `#enable-push-notifications` (`.modal`, `.modal-footer button.btn-primary` "Not now" closes it)
  after the first render of every full app load, not on hash changes; it covers the page
  [evidence: the selector and a "Clicked popup" log; unverified: when it shows]. Fault
  `push_modal=False` switches it off.

Inbox (`#chat`)
- `#chat-section` [evidence], `ol.media-list.chat-list > li` [evidence] with `a.media-body`
  (href `#chat/member/<id>/chat`), `h5.media-heading`, `.media-date span[data-timestamp]` (epoch
  seconds with a fraction) [evidence], `p.messages-chats-item-preview` [unverified: the class;
  evidence: a plain `p`] holding the last incoming text, or `Sent: <text>` / `Seen` when the
  last message is ours [evidence: previews starting "Sent"/"Seen"], and
  `p.messages-chats-item-typing` "typing…" while the contact types [evidence: the class;
  admin `typing`]. `span.badge.chat-unread` unread counts [unverified], cleared when the
  conversation is opened; `.chat-list-empty` "No messages yet" [unverified];
  `#nav-chat > a > div > span:nth-child(1)` the count of unread conversations [evidence].
- Live: the page subscribes to `/api/live` (server-sent events) and re-renders the list in place
  on each change [unverified: the channel; real apps use a websocket or SSE].

Conversation (`#chat/member/<id>/chat`) [unverified unless said: no public code reads it]
- `.chat-header h4.media-heading` is the only place of the contact's name [inferred in the
  evidence]; `#chat-messages` (scroll box, fixed height) with `ol.chat-message-list > li.media`,
  `messages-chat-media-them` [evidence, old C#] / `messages-chat-media-me`, text
  `.chat-message p` [evidence: `.chat-message`], `.media-date span[data-timestamp]`; no message
  ids, no sender names.
- Only the newest `page_size` (20) messages render; scrolling the box to the top loads the 20
  before them (prepended, the scroll position kept) after the render delay; the oldest page
  shows `li.chat-start` [evidence: "probably infinite scroll", inferred].
- Reply box `.chat-form textarea.form-control.input-lg[placeholder="Type something…"]`
  [evidence, code], send `.chat-form button[type=submit]` [evidence, code], disabled until an
  `input` event leaves non-blank text [evidence: old code force-enabled it]. Enter (no Shift)
  sends, Shift+Enter is a newline [evidence: 2017 code pressed Enter]. A sent message shows at
  once with `is-pending` and `.chat-message-pending` "Sending…" and loses them on the answer;
  a failed send shows `.is-failed` [unverified]. The page dedupes by a client id it sends, so
  a later sync that brings a message it shows as pending or failed confirms that one.
- Faults: `send_pending_forever` (True or "lost": never answered, not stored; "stored": stored,
  never answered), `send_fail_after_store` (stored, answered 500, the open page is not pushed
  it), `send_slow` (ms before storing and answering).
- Live: new messages are appended while the page is open (SSE change -> fetch after the last).

Rename fault (for the doctor): `rename` {key: new name} changes hooks on later renders: a key of
`state.RENAMEABLE` changes that one hook (an id, a class, or the reply box's placeholder) on its
element; a key ".class" or "#id" changes that class or id wherever the markup has it. Each
element keeps a `data-testid` (and an aria-label where it has a name) as a stable alternative.

Admin API on the app host, chatsite's shape (`PhoenixAdmin` is chatsite's client): reset,
accounts, sessions (a cookie for the app host), inject, messages, sent, stats, faults; plus
`typing`, `seen`, `rename` and `env` (MEETME_URL / MEETME_APP_URL). Stats: `page_views` counts
shell loads (`views` per host), `inbox_views` / `conversation_views` renders of those routes
(not live refreshes), `api_reads` every delayed read, `held_sends` sends never answered, and
chatsite's `login_submissions`, `logins`, `sends`, `live_streams`, `live_pushes`.
Run alone: `python -m standins.phoenix --port-www 8311 --port-app 8312`.
"""
from standins.phoenix.admin import PhoenixAdmin
from standins.phoenix.site import ServedPhoenix, make_apps
from standins.phoenix.state import RENAMEABLE, PhoenixFaults, PhoenixState

__all__ = ["RENAMEABLE", "PhoenixAdmin", "PhoenixFaults", "PhoenixState", "ServedPhoenix", "make_apps"]
