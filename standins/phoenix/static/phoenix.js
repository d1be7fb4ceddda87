// The phoenix stand-in's client: renders every page of both hosts into the empty shell from the
// JSON API (see standins/phoenix/__init__.py). All chat text goes in as text, never as HTML.
(() => {
  "use strict";
  const HOST = document.currentScript.dataset.host;   // "www" | "app"
  const root = document.getElementById("global-layer-main-content");
  const OVERLAY = "position:fixed;inset:0;z-index:1000;background:rgba(0,0,0,.6)";
  const DIALOG = "margin:20vh auto;width:320px;background:#fff;padding:1em";
  let cfg = {rename: {}};
  let routeGen = 0;
  let live = null;

  // a hook as the site currently spells it (the admin `rename` fault)
  const N = (key, name) => (cfg.rename && cfg.rename[key]) || name;
  // any class (".name") or id ("#name") of the markup, renamed wherever it appears
  const renamed = (key, name) => (cfg.rename && Object.hasOwn(cfg.rename, key) ? cfg.rename[key] : name);
  const cls = (name) => renamed(`.${name}`, name);   // for classList changes after a render

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v.split(/\s+/).map((c) => renamed(`.${c}`, c)).join(" ");
      else if (k === "id") el.id = renamed(`#${v}`, v);
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  async function api(path, opts) {
    const r = await fetch(path, Object.assign({credentials: "same-origin",
      headers: {"Content-Type": "application/json"}}, opts || {}));
    if (r.status === 401 && HOST === "app") {
      const d = await r.json().catch(() => ({}));
      location.href = d.login || "/";
      throw new Error("logged out");
    }
    return r;
  }

  const hhmm = (ts) => new Date(ts * 1000).toISOString().slice(11, 16);
  const stamp = (ts) => h("div", {class: "media-date"},
    h("span", {"data-timestamp": ts.toFixed(3), title: new Date(ts * 1000).toISOString()}, hhmm(ts)));

  // ------------------------------------------------------------------ www: start page and login

  async function www() {
    cfg = await (await api("/api/config")).json();
    if (!location.hash) history.replaceState(null, "", "/#home");
    root.replaceChildren(
      h("header", {id: "marketing-header", class: "marketing-header"},
        h("span", {class: "brand"}, cfg.brand),
        h("div", {id: N("login_open", "marketing-header-login"), class: "marketing-header-login"},
          h("button", {type: "button", class: "btn btn-black", "data-testid": "login-open",
                       onclick: openLogin}, "Log in"))),
      h("main", {id: "marketing-main"}, h("h1", {}, `Meet new people on ${cfg.brand}`),
        h("div", {id: "nav-header-email-auth-reminder"})));
  }

  function openLogin() {
    if (document.getElementById("site-login-modal")) return;
    const email = h("input", {type: "email", id: N("login_username", "site-login-modal-email"),
      name: "email", class: "form-control", autocomplete: "username", "data-testid": "login-email",
      "aria-label": "Email"});
    const password = h("input", {type: "password", id: N("login_password", "site-login-modal-password"),
      name: "password", class: "form-control", autocomplete: "current-password",
      "data-testid": "login-password", "aria-label": "Password"});
    const submit = h("button", {type: "submit", class: "btn btn-primary", "data-testid": "login-submit"}, "Log in");
    const form = h("form", {id: "site-login-modal-form", novalidate: true},
      email, password, h("div", {id: N("login_submit", "site-login-modal-submit-group")}, submit));
    const modal = h("div", {id: "site-login-modal", class: "modal", role: "dialog", "aria-modal": "true",
                            "aria-label": "Log in", style: OVERLAY},
      h("div", {class: "modal-dialog", style: DIALOG},
        h("div", {class: "modal-content"}, h("h4", {class: "modal-title"}, "Log in"), form)));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (submit.disabled) return;
      submit.disabled = true;
      form.querySelector(".error-message")?.remove();
      try {
        const r = await fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify({email: email.value, password: password.value})});
        const d = await r.json();
        if (d.redirect) { location.href = d.redirect; return; }
        if (d.challenge) { challenge(d); return; }
        form.prepend(h("div", {class: "error-message", role: "alert"}, d.error || "Login failed"));
      } catch (e) {
        form.prepend(h("div", {class: "error-message", role: "alert"}, "Something went wrong"));
      }
      submit.disabled = false;
    });
    document.body.append(modal);
    email.focus();
  }

  function challenge(d) {
    document.getElementById("site-login-modal")?.remove();
    root.replaceChildren(h("main", {"data-testid": "login-challenge", "data-challenge": d.challenge, role: "alert"},
      h("h1", {}, "Verify it's you"), h("p", {}, d.text),
      h("input", {name: "code", autocomplete: "one-time-code", "aria-label": "Code"})));
  }

  // ------------------------------------------------------------------ app: shell, routes, popups

  async function app() {
    cfg = await (await api("/api/me")).json();
    const count = h("span", {class: "nav-count", "data-testid": "nav-chat-count"}, String(cfg.unread_conversations));
    root.replaceChildren(
      h("div", {id: "phoenix-topbar", class: "phoenix-topnav"},
        h("ul", {class: "nav"},
          h("li", {id: "nav-meet"}, h("a", {href: "#meet"}, h("div", {}, h("span", {}, "Meet")))),
          h("li", {id: "nav-chat"}, h("a", {href: "#chat"}, h("div", {}, count, h("span", {}, " Chat"))))),
        h("div", {id: N("logged_in", "user-menu"), class: "phoenix-topnav-profile-menu", "data-testid": "user-menu"},
          h("span", {}, cfg.user))),
      h("main", {id: "phoenix-main"}));
    if (!location.hash) history.replaceState(null, "", "/#meet");
    window.addEventListener("hashchange", route);
    await route();
    if (cfg.push_modal) pushModal();
  }

  function setNavCount(n) {
    const el = document.querySelector("[data-testid=nav-chat-count]");
    if (el) el.textContent = String(n);
  }

  function pushModal() {
    const close = () => modal.remove();
    const modal = h("div", {id: N("push_modal", "enable-push-notifications"), class: "modal", role: "dialog",
                            "aria-modal": "true", "aria-label": "Enable push notifications",
                            "data-testid": "push-modal", style: OVERLAY},
      h("div", {class: "modal-dialog", style: DIALOG}, h("div", {class: "modal-content"},
        h("div", {class: "modal-body"}, h("p", {}, "Turn on notifications so you never miss a message.")),
        h("div", {class: "modal-footer"},
          h("button", {type: "button", class: "btn btn-secondary", onclick: close}, "Turn on"),
          h("button", {type: "button", class: "btn btn-primary", "data-testid": "push-notifications-dismiss",
                       onclick: close}, "Not now")))));
    document.body.append(modal);
  }

  function subscribe(channel, since, onChange) {
    const es = new EventSource(`/api/live?channel=${encodeURIComponent(channel)}&since=${since}`);
    let busy = false, again = false;
    es.addEventListener("change", async () => {
      if (busy) { again = true; return; }
      busy = true;
      try {
        do { again = false; await onChange(); } while (again);
      } catch (e) { /* the next change tries again */ }
      busy = false;
    });
    live = es;
  }

  async function route() {
    const gen = ++routeGen;
    if (live) { live.close(); live = null; }
    const main = document.getElementById("phoenix-main");
    main.replaceChildren(h("div", {class: "loading", "aria-busy": "true"}, "Loading\u2026"));
    const hash = location.hash.replace(/^#/, "");
    const m = /^chat\/member\/(\d+)\/chat$/.exec(hash);
    if (hash === "chat") await inbox(main, gen);
    else if (m) await conversation(main, gen, m[1]);
    else await meet(main, gen);
  }

  async function meet(main, gen) {
    await api("/api/meet");
    if (gen !== routeGen) return;
    main.replaceChildren(h("section", {id: "meet-section"}, h("h2", {}, "Meet"),
      h("p", {}, "People near you will show up here.")));
  }

  // ------------------------------------------------------------------ inbox (#chat)

  async function inbox(main, gen) {
    const d = await (await api("/api/conversations")).json();
    if (gen !== routeGen) return;
    const section = h("section", {id: N("inbox_section", "chat-section"), "data-testid": "chat-section"});
    main.replaceChildren(section);
    fillInbox(section, d);
    subscribe("inbox", d.version, async () => {
      const d2 = await (await api("/api/conversations?live=1")).json();
      if (gen === routeGen) fillInbox(section, d2);
    });
  }

  function fillInbox(section, d) {
    setNavCount(d.unread_conversations);
    const items = d.conversations.map((c) => h("li", {class: "media", "data-testid": "chat-item"},
      h("a", {class: N("inbox_link", "media-body"), href: `#chat/member/${c.id}/chat`, "data-testid": "chat-item-link"},
        h("h5", {class: N("inbox_name", "media-heading"), "data-testid": "chat-item-name"}, c.name),
        c.ts !== null ? stamp(c.ts) : null,
        h("p", {class: N("inbox_preview", "messages-chats-item-preview"), "data-testid": "chat-item-preview"}, c.preview),
        c.typing ? h("p", {class: N("inbox_typing", "messages-chats-item-typing"), "data-testid": "chat-item-typing"},
                     "typing\u2026") : null),
      c.unread ? h("span", {class: `badge ${N("inbox_unread", "chat-unread")}`, "data-testid": "chat-item-unread"},
                   String(c.unread)) : null));
    section.replaceChildren(
      h("h2", {}, "Chat"),
      h("ol", {class: `media-list ${N("inbox_list", "chat-list")}`, "data-testid": "chat-list",
               "aria-label": "Conversations"}, items),
      items.length ? null : h("div", {class: "chat-list-empty", "data-testid": "chat-list-empty"}, "No messages yet"));
  }

  // ------------------------------------------------------------------ conversation

  function messageLi(m) {
    const cls = m.direction === "out" ? N("message_out", "messages-chat-media-me") : N("message_in", "messages-chat-media-them");
    return h("li", {class: `media ${cls}`, "data-testid": "chat-message", "data-direction": m.direction},
      h("div", {class: "media-body", "data-testid": "chat-message-body"},
        h("div", {class: N("message_text", "chat-message"), "data-testid": "chat-message-text"},
          h("p", {style: "white-space:pre-wrap;margin:0"}, m.text)),
        stamp(m.ts)));
  }

  const startLi = () => h("li", {class: N("chat_start", "chat-start"), "data-testid": "chat-start"},
    "This is the beginning of your conversation");

  async function conversation(main, gen, cid) {
    const url = `/api/conversations/${cid}/messages`;
    const r = await api(url);
    const d = await r.json();
    if (gen !== routeGen) return;
    if (!r.ok) {
      main.replaceChildren(h("section", {class: "chat-not-found"}, d.error || "Not found"));
      return;
    }
    const known = new Set(d.messages.map((m) => m.id));
    const pending = new Map();   // client id -> its <li> (pending or failed)
    let synced = d.messages.length ? d.messages[d.messages.length - 1].id : 0;
    let oldest = d.messages.length ? d.messages[0].id : null;
    let hasMore = d.has_more, loading = false;

    const list = h("ol", {class: "chat-message-list", "data-testid": "chat-message-list"},
      hasMore ? null : startLi(), d.messages.map(messageLi));
    const box = h("div", {id: N("message_list", "chat-messages"), "data-testid": "chat-messages", role: "log",
                          "aria-label": "Messages", style: "overflow:auto;height:360px;border:1px solid #ccc"}, list);
    const text = h("textarea", {class: "form-control input-lg", placeholder: N("reply_box", "Type something\u2026"),
                                "aria-label": "Message", "data-testid": "chat-input", rows: 2});
    const send = h("button", {type: "submit", class: "btn btn-primary", "data-testid": "chat-send",
                              "aria-label": "Send", disabled: true}, "Send");
    const form = h("form", {class: N("reply_form", "chat-form"), "data-testid": "chat-form"}, text, send);
    main.replaceChildren(h("section", {id: "chat-conversation"},
      h("div", {class: "chat-header media", "data-testid": "chat-header"},
        h("div", {class: "media-body"},
          h("h4", {class: N("conversation_contact", "media-heading"), "data-testid": "chat-contact-name"}, d.name))),
      box, form));
    box.scrollTop = box.scrollHeight;

    const atBottom = () => box.scrollHeight - box.scrollTop - box.clientHeight < 40;

    // older messages: when the box is scrolled to its top, or (as infinite lists do) while what
    // is shown does not fill the box
    async function loadOlder() {
      if (!hasMore || loading || oldest === null) return;
      loading = true;
      try {
        const o = await (await api(`${url}?before=${oldest}`)).json();
        if (gen !== routeGen) return;
        const height = box.scrollHeight, top = box.scrollTop;
        o.messages.forEach((m) => known.add(m.id));
        if (o.messages.length) oldest = o.messages[0].id;
        hasMore = o.has_more;
        list.prepend(...(hasMore ? [] : [startLi()]), ...o.messages.map(messageLi));
        box.scrollTop = box.scrollHeight - height + top;
      } finally { loading = false; }
      if (box.scrollHeight <= box.clientHeight) loadOlder();
    }
    box.addEventListener("scroll", () => { if (box.scrollTop <= 0) loadOlder(); });
    if (box.scrollHeight <= box.clientHeight) loadOlder();

    const pendingClass = () => cls(N("pending", "is-pending"));
    const part = (li, testid) => li.querySelector(`[data-testid=${testid}]`);

    function confirmLi(li, m) {
      li.classList.remove(pendingClass(), cls("is-failed"));
      part(li, "chat-message-pending")?.remove();
      part(li, "chat-message-failed")?.remove();
      li.querySelector("[data-timestamp]").replaceWith(stamp(m.ts).firstChild);
    }

    async function sync() {
      const s = await (await api(`${url}?after=${synced}&live=1`)).json();
      if (gen !== routeGen) return;
      const follow = atBottom();
      for (const m of s.messages) {
        synced = Math.max(synced, m.id);
        if (known.has(m.id)) continue;
        known.add(m.id);
        const mine = m.client_id && pending.get(m.client_id);
        if (mine) { pending.delete(m.client_id); confirmLi(mine, m); } else list.append(messageLi(m));
      }
      if (follow) box.scrollTop = box.scrollHeight;
    }

    async function doSend() {
      const value = text.value;
      if (!value.trim()) return;
      const clientId = `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
      const li = messageLi({direction: "out", text: value, ts: Date.now() / 1000});
      li.classList.add(pendingClass());
      part(li, "chat-message-body").append(h("span", {class: "chat-message-pending",
                                                     "data-testid": "chat-message-pending"}, "Sending\u2026"));
      list.append(li);
      pending.set(clientId, li);
      box.scrollTop = box.scrollHeight;
      text.value = "";
      send.disabled = true;
      try {
        const r2 = await api(url, {method: "POST", body: JSON.stringify({text: value, client_id: clientId})});
        if (!r2.ok) throw new Error(`HTTP ${r2.status}`);
        const a = await r2.json();
        if (pending.get(clientId) === li) {
          pending.delete(clientId);
          known.add(a.message.id);
          confirmLi(li, a.message);
        }
      } catch (e) {
        if (pending.get(clientId) !== li) return;   // a sync confirmed it meanwhile
        li.classList.remove(pendingClass());
        li.classList.add(cls("is-failed"));
        part(li, "chat-message-pending")?.remove();
        part(li, "chat-message-body").append(h("span", {class: "chat-message-failed",
                                                       "data-testid": "chat-message-failed"}, "Not sent"));
      }
    }

    text.addEventListener("input", () => { send.disabled = !text.value.trim(); });
    text.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); doSend(); }
    });
    form.addEventListener("submit", (ev) => { ev.preventDefault(); doSend(); });
    subscribe(cid, d.version, sync);
  }

  (HOST === "www" ? www() : app()).catch((e) => console.error("phoenix:", e));
})();
