/* replydesk review desk. Plain JS, no dependencies.
 * Every piece of chat or draft text is put on the page with textContent, never parsed as HTML: it is
 * hostile data. The token lives in sessionStorage and travels only in the Authorization header. */
"use strict";
(() => {
  const TOKEN_KEY = "replydesk.reviewToken";
  const $ = (id) => document.getElementById(id);
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    meta: null, drafts: [], cursor: null, pages: 0, selected: null, current: null, original: "",
    busy: false, pollTimer: null,
    // live inbox: `inboxSeq` changes with every user load or decision, so an older background
    // answer is dropped; `known` = ids already shown in this view, `fresh` = those marked "New".
    inboxTimer: null, inboxSeq: 0, known: new Set(), fresh: new Set(), inboxPollError: "",
    // the open conversation: its path and last messages; `convTimer` waits for a sent reply
    convPath: null, messages: [], convTimer: null,
    // an approval held for undo (review.undo_s): its draft id, when it is released (local
    // clock, from the approval's answer), and the countdown's timer
    held: null, heldTimer: null, undone: null,
  };
  const WAITING = new Set(["approved", "edited", "sending"]);
  const STATUS_LABELS = {
    pending_review: "Pending", approved: "Approved", edited: "Edited", sending: "Sending",
    sent: "Sent", rejected: "Rejected", superseded: "Superseded",
  };

  class ApiFailure extends Error {
    constructor(status, message, data) { super(message); this.status = status; this.data = data || {}; }
  }

  async function api(method, path, body) {
    const headers = { "Authorization": "Bearer " + state.token, "Accept": "application/json" };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiFailure(0, "the review desk could not be reached (network error); check that it is running");
    }
    let data = null;
    if ((resp.headers.get("Content-Type") || "").startsWith("application/json")) {
      try { data = await resp.json(); } catch (e) { data = null; }
    }
    if (!resp.ok) {
      const detail = data && typeof data.error === "string" ? data.error : (resp.statusText || "unexpected answer");
      throw new ApiFailure(resp.status, detail, data);
    }
    return data;
  }

  function explain(action, err) {
    if (!(err instanceof ApiFailure)) return `${action} failed: ${err && err.message ? err.message : err}`;
    switch (err.status) {
      case 0: return `${action} failed: ${err.message}.`;
      case 401: return `${action} failed: the review token was not accepted (401). Enter the token again.`;
      case 409: return `${action} failed: ${err.message} (409 conflict).`;
      case 429: return `${action} failed: too many requests (429). Wait a few seconds and try again.`;
      default: return `${action} failed: ${err.message} (HTTP ${err.status}).`;
    }
  }

  function showError(text) {
    $("error-text").textContent = text;
    $("error").hidden = false;
  }
  function clearError() {
    $("open-newer").hidden = true;
    $("error").hidden = true;
    $("error-text").textContent = "";
  }

  /** Run an action with its section marked busy (spinner + aria-busy) and report failures. */
  async function run(section, action, fn) {
    state.busy = true;
    section.setAttribute("aria-busy", "true");
    updateButtons();
    try {
      clearError();
      return await fn();
    } catch (err) {
      showError(explain(action, err));
      if (err instanceof ApiFailure && err.status === 401) signOut(false);
      return undefined;
    } finally {
      state.busy = false;
      section.setAttribute("aria-busy", "false");
      updateButtons();
    }
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toLocaleString();
  }

  // ------------------------------------------------------------------ session
  async function connect(token) {
    state.token = token;
    const meta = await run($("inbox"), "Signing in", () => api("GET", "/api/meta"));
    if (!meta) return;
    state.meta = meta;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("reviewer").textContent = meta.reviewer;
    fillSelect($("f-account"), meta.accounts);
    fillSelect($("f-class"), meta.classifications);
    fillStatuses($("f-status"), meta.statuses);
    $("token-form").hidden = true;
    $("session").hidden = false;
    $("desk").hidden = false;
    await loadInbox(false);
    $("inbox").focus();
    await loadAccounts();
    await openLinkedDraft();
    document.dispatchEvent(new CustomEvent("replydesk:signedin", { detail: meta }));
  }

  /** A link from a notification names a draft: `#draft=<id>` opens it once signed in. */
  async function openLinkedDraft() {
    const m = /(?:^#|&)draft=([^&]+)/.exec(location.hash);
    if (!m) return;
    history.replaceState(null, "", location.pathname + location.search);
    await openById(decodeURIComponent(m[1]));
  }

  async function openById(id) {
    const r = await run($("conversation"), "Opening the linked draft", () => api("GET", `/api/drafts/${encodeURIComponent(id)}`));
    if (!r) return;
    if (!state.drafts.some((d) => d.id === id)) state.current = r.draft;
    await openDraft(id);
  }

  /** `#token=<token>` (the demo prints such a link): signed in at once, the token then kept only
   * in sessionStorage and removed from the address bar and history entry. */
  function tokenFromLink() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (!m) return null;
    const rest = location.hash.replace(/^#/, "").split("&").filter((p) => !p.startsWith("token=")).join("&");
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
    return decodeURIComponent(m[1]);
  }

  function signOut(clearMessage) {
    stopPolling();
    stopInboxPolling();
    stopReplyWatch();
    state.token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    $("desk").hidden = true;
    $("accounts").hidden = true;
    $("session").hidden = true;
    $("token-form").hidden = false;
    $("token").value = "";
    $("token").focus();
    if (clearMessage) clearError();
    document.dispatchEvent(new CustomEvent("replydesk:signedout"));
  }

  function fillSelect(select, values) {
    const keep = select.options[0];
    select.replaceChildren(keep);
    for (const v of values) {
      const opt = el("option", null, v);
      opt.value = v;
      select.append(opt);
    }
  }

  function fillStatuses(select, statuses) {
    select.replaceChildren();
    for (const s of statuses) {
      const opt = el("option", null, STATUS_LABELS[s] || s);
      opt.value = s;
      select.append(opt);
    }
    select.value = "pending_review";
  }

  // ------------------------------------------------------------------ inbox
  function inboxQuery() {
    const params = new URLSearchParams({ status: $("f-status").value || "pending_review" });
    if ($("f-account").value) params.set("account", $("f-account").value);
    if ($("f-class").value) params.set("classification", $("f-class").value);
    return params;
  }

  /** A load the reviewer asked for (sign-in, Refresh, a filter, Load more): spinner, errors shown. */
  async function loadInbox(append) {
    const params = inboxQuery();
    if (append && state.cursor) params.set("cursor", state.cursor);
    const seq = ++state.inboxSeq;
    stopInboxPolling();
    const page = await run($("inbox"), "Loading the inbox", () => api("GET", "/api/drafts?" + params));
    if (seq !== state.inboxSeq || !state.token) return;
    if (page) {
      if (!append) {
        state.known = new Set();
        state.fresh = new Set();
        $("inbox-news").textContent = "";
      }
      state.drafts = append ? state.drafts.concat(page.drafts) : page.drafts;
      state.pages = append ? state.pages + 1 : 1;
      state.cursor = page.next_cursor;
      for (const d of page.drafts) state.known.add(d.id);
      renderInbox();
    }
    scheduleInboxPoll();
  }

  // ------------------------------------------------------------------ live inbox
  /** Re-read the first page in the background (no spinner) and merge it in: new drafts appear,
   * decided ones go. The selection, the focus and the editor are left alone. */
  async function pollInbox() {
    state.inboxTimer = null;
    if (!state.token) return;
    if (document.hidden) { scheduleInboxPoll(); return; }   // nobody looking: wait, poll on return
    const seq = state.inboxSeq;
    try {
      const page = await api("GET", "/api/drafts?" + inboxQuery());
      if (seq !== state.inboxSeq || !state.token) return;  // a newer load or a decision won
      mergeFirstPage(page);
      if (state.inboxPollError && $("error-text").textContent === state.inboxPollError) clearError();
      state.inboxPollError = "";
    } catch (err) {
      if (err instanceof ApiFailure && err.status === 401) {
        showError(explain("Checking for new drafts", err));
        signOut(false);
        return;
      }
      if (seq !== state.inboxSeq) return;
      const text = explain("Checking for new drafts", err) + " Retrying on its own.";
      if ($("error").hidden || $("error-text").textContent !== text) showError(text);   // once, not every tick
      state.inboxPollError = text;
    }
    scheduleInboxPoll();
  }

  function scheduleInboxPoll() {
    stopInboxPolling();
    if (state.token && state.meta) state.inboxTimer = setTimeout(pollInbox, state.meta.inbox_poll_interval_ms);
  }

  function stopInboxPolling() {
    if (state.inboxTimer) clearTimeout(state.inboxTimer);
    state.inboxTimer = null;
  }

  /** True when draft `a` sorts after `b` in the newest-first list (created_at, then id). */
  function olderThan(a, b) {
    return a.created_at < b.created_at || (a.created_at === b.created_at && a.id < b.id);
  }

  function mergeFirstPage(page) {
    const head = page.drafts;
    let older = [];
    if (state.pages > 1 && page.next_cursor && head.length) {
      const last = head[head.length - 1];          // keep the pages loaded with "Load more"
      older = state.drafts.filter((d) => olderThan(d, last));
    } else {
      state.cursor = page.next_cursor;
      state.pages = 1;
    }
    const arrived = head.filter((d) => !state.known.has(d.id));
    for (const d of arrived) { state.known.add(d.id); state.fresh.add(d.id); }
    state.drafts = head.concat(older);
    renderInbox();
    if (arrived.length) {
      const n = arrived.length;
      $("inbox-news").textContent = `${n} new ${n === 1 ? "draft" : "drafts"} arrived (${inboxTitle()}: ${countText()}).`;
    }
  }

  function inboxTitle() {
    return `${STATUS_LABELS[$("f-status").value] || "Pending"} drafts`;
  }

  function countText() {
    return `${state.drafts.length}${state.cursor ? "+" : ""}`;
  }

  /** Keyed rendering: an item keeps its element from one render to the next and only new items
   * are inserted, so a focused item keeps the focus while the list changes around it. */
  function renderInbox() {
    const list = $("draft-list");
    const active = document.activeElement;
    const focusedId = active && active.classList.contains("draft-item") ? active.dataset.id : null;
    const items = new Map([...list.children].map((li) => [li.dataset.id, li]));
    const wanted = new Set(state.drafts.map((d) => d.id));
    for (const [id, li] of items) if (!wanted.has(id)) li.remove();
    let at = list.firstElementChild;
    for (const d of state.drafts) {
      const li = items.get(d.id) || newItem(d.id);
      fillItem(li, d);
      if (li === at) at = at.nextElementSibling;
      else list.insertBefore(li, at);
    }
    if (focusedId && document.activeElement !== active) {     // its item was removed (decided elsewhere)
      if (wanted.has(focusedId)) active.focus();
      else $("inbox").focus();
    }
    const status = $("f-status").value || "pending_review";
    $("inbox-label").textContent = inboxTitle();
    $("inbox-count").textContent = `(${countText()})`;
    list.setAttribute("aria-label", status === "pending_review" ? "Drafts waiting for review" : inboxTitle());
    $("inbox-empty").textContent = status === "pending_review" ? "No drafts are waiting for review."
      : `No ${inboxTitle().toLowerCase()}.`;
    $("inbox-empty").hidden = state.drafts.length > 0;
    $("more").hidden = !state.cursor;
  }

  function newItem(id) {
    const li = el("li");
    li.dataset.id = id;
    const btn = el("button", "draft-item");
    btn.type = "button";
    btn.dataset.id = id;
    btn.addEventListener("click", () => openDraft(id));
    li.append(btn);
    return li;
  }

  function fillItem(li, d) {
    const btn = li.firstElementChild;
    const isNew = state.fresh.has(d.id);
    const key = JSON.stringify([d.account_id, d.conversation_id, d.contact, d.classification, d.status, d.decided_by, d.text, isNew]);
    if (state.selected === d.id) btn.setAttribute("aria-current", "true");
    else btn.removeAttribute("aria-current");
    if (btn.dataset.key === key) return;                       // unchanged: leave the DOM alone
    btn.dataset.key = key;
    btn.classList.toggle("new", isNew);
    const line1 = el("span", "line1");
    const badges = el("span", "badges");
    if (isNew) badges.append(el("span", "badge new-badge", "New"));
    badges.append(el("span", "badge", d.classification));
    if (d.status !== "pending_review") {
      badges.append(el("span", "badge status-badge", STATUS_LABELS[d.status] || d.status));
      if (d.decided_by) badges.append(el("span", "badge by-badge", `by ${d.decided_by}`));
    }
    const where = el("span", null, `${d.account_id} · ${d.conversation_id}`);
    if (d.contact) where.prepend(el("strong", "contact", d.contact), " · ");
    line1.append(where, badges);
    btn.replaceChildren(line1, el("span", "snippet", d.text));
  }

  /** After a decision: the list view no longer matches (or shows the new status). */
  function afterDecision(draft) {
    state.inboxSeq++;                      // a background answer read before the decision is stale
    state.fresh.delete(draft.id);
    if (draft.status === ($("f-status").value || "pending_review")) {
      state.drafts = state.drafts.map((d) => (d.id === draft.id ? draft : d));
    } else {
      state.drafts = state.drafts.filter((d) => d.id !== draft.id);
    }
    renderInbox();
    scheduleInboxPoll();
  }

  // ------------------------------------------------------------------ conversation
  async function openDraft(id) {
    const draft = state.drafts.find((d) => d.id === id) || (state.current && state.current.id === id ? state.current : null);
    if (!draft) return;
    stopPolling();
    stopReplyWatch();
    state.selected = id;
    state.fresh.delete(id);
    renderInbox();
    const path = `/api/conversations/${encodeURIComponent(draft.account_id)}/${encodeURIComponent(draft.conversation_id)}`;
    const conv = await run($("conversation"), "Opening the conversation", () => api("GET", path));
    if (!conv || state.selected !== id) return;
    state.convPath = path;
    $("conv-placeholder").hidden = true;
    $("conv-body").hidden = false;
    $("conv-account").textContent = conv.account_id;
    $("conv-id").textContent = conv.conversation_id;
    $("conv-class").textContent = draft.classification || "";
    let latest = conv.draft && conv.draft.id === id ? conv.draft : draft;
    if (latest.text_truncated) {             // the inbox list holds an excerpt: edit the whole text
      const full = await run($("conversation"), "Opening the draft", () => api("GET", `/api/drafts/${encodeURIComponent(id)}`));
      if (!full || state.selected !== id) return;
      latest = full.draft;
    }
    state.messages = conv.messages;
    renderMessages(latest);
    setDraft(latest, true);
    follow(latest, state.meta.inbox_poll_interval_ms);
  }

  /** Whether `m` is the chat's copy of the sent draft `d` (the browser session stores its own
   * outgoing message on its next pass, with the site's id it got when sending). */
  function isReply(m, d) {
    if (m.direction !== "out") return false;
    return d.site_message_id ? m.site_message_id === d.site_message_id : m.text === d.text;
  }

  /** The conversation's messages; a sent reply the chat does not show yet is shown as sent text
   * with its status until the conversation is reloaded with it. */
  function renderMessages(draft) {
    const list = $("messages");
    list.replaceChildren();
    const sent = draft && draft.status === "sent";
    for (const m of state.messages) {
      const mine = sent && isReply(m, draft);
      const li = el("li", "msg " + (m.direction === "out" ? "out" : "in") + (mine ? " reply" : ""));
      li.append(el("div", "who", `${m.sender} · ${m.sent_at}`), el("div", "text", m.text));
      if (mine) li.append(el("div", "state", "This reply was sent ✓"));
      list.append(li);
    }
    if (sent && !state.messages.some((m) => isReply(m, draft))) {
      const li = el("li", "msg out reply provisional");
      li.append(el("div", "who", `You · sent ${when(draft.times && draft.times.sent)}`), el("div", "text", draft.text),
        el("div", "state", "Sent ✓ · waiting for the chat to show it"));
      list.append(li);
    }
    list.scrollTop = list.scrollHeight;
  }

  /** Keep watching the open draft: its send status while it waits, then its reply in the chat. */
  function follow(draft, replyDelayMs) {
    if (WAITING.has(draft.status)) startPolling(draft.id);
    else if (draft.status === "sent" && !state.messages.some((m) => isReply(m, draft))) watchReply(draft, replyDelayMs);
  }

  /** Reload the conversation until it holds the sent reply (the provisional one is shown meanwhile). */
  function watchReply(draft, delayMs) {
    stopReplyWatch();
    const path = state.convPath;
    const tick = async () => {
      state.convTimer = null;
      if (!state.token || !state.current || state.current.id !== draft.id) return;
      try {
        const conv = await api("GET", path);
        if (!state.current || state.current.id !== draft.id) return;
        state.messages = conv.messages;
        renderMessages(draft);
        if (state.messages.some((m) => isReply(m, draft))) return;
      } catch (err) {
        showError(explain("Reloading the conversation", err));
        if (err instanceof ApiFailure && err.status === 401) { signOut(false); return; }
      }
      state.convTimer = setTimeout(tick, state.meta.inbox_poll_interval_ms);
    };
    state.convTimer = setTimeout(tick, delayMs);
  }

  function stopReplyWatch() {
    if (state.convTimer) clearTimeout(state.convTimer);
    state.convTimer = null;
  }

  function setDraft(draft, replaceText) {
    state.current = draft;
    $("draft-origin").textContent = draft.by_hand ? `Written by hand by ${draft.author}.`
      : draft.instruction ? `Redrafted at a reviewer's request: “${draft.instruction}”` : "";
    $("draft-origin").hidden = !$("draft-origin").textContent;
    if (replaceText) {
      state.original = draft.text;
      $("draft-text").value = draft.text;
    }
    renderStatus(draft);
    updateButtons();
  }

  function renderStatus(d) {
    const by = d.decided_by ? ` by ${d.decided_by}` : "";
    const texts = {
      pending_review: "Waiting for your review. Nothing is sent until you approve.",
      approved: `Approved${by}. Waiting for the browser to send it…`,
      edited: `Edited and approved${by}. Waiting for the browser to send it…`,
      sending: "Sending…",
      sent: `Sent ✓ ${when(d.times && d.times.sent)}`,
      rejected: `Rejected${by}${d.reject_reason ? ": " + d.reject_reason : ""}. It will not be sent.`,
      superseded: `Superseded: ${d.superseded_reason || "newer messages arrived"}. It will not be sent` +
        (d.superseded_by ? "; a newer draft answers the conversation." : "."),
    };
    const node = $("draft-status");
    let text = texts[d.status] || `Status: ${d.status}`;
    const held = !!d.release_at && (d.status === "approved" || d.status === "edited");
    if (d.status === "pending_review" && state.undone === d.id) text = "Undone: the draft is back in review. Nothing was sent.";
    if (held) {
      const left = state.held && state.held.id === d.id ? Math.ceil((state.held.at - Date.now()) / 1000) : 0;
      text = `${d.status === "edited" ? "Edited and approved" : "Approved"}${by}. ` +
        (left > 0 ? `Sending in ${left}\u00a0s.` : "Sending in a moment.") + " Undo (z) takes it back.";
    }
    $("undo").hidden = !held;
    if (held && !state.heldTimer) state.heldTimer = setInterval(() => state.current && renderStatus(state.current), 500);
    if (!held && state.heldTimer) { clearInterval(state.heldTimer); state.heldTimer = null; }
    if (d.send_error) text += ` Sending failed: ${d.send_error}`;
    node.textContent = text;
    node.className = "draft-status" + (d.status === "sent" ? " sent" : "") + (d.send_error ? " failed" : "");
    node.dataset.status = d.status;
  }

  function updateButtons() {
    const d = state.current;
    const pending = !!d && d.status === "pending_review" && !state.busy;
    const text = $("draft-text").value;
    const edited = text !== state.original;
    const max = state.meta ? state.meta.max_text_chars : Infinity;
    $("approve").disabled = !pending || edited;
    $("save-approve").disabled = !pending || !edited || !text.trim() || text.length > max;
    $("reject").disabled = !pending;
    $("undo").disabled = !!state.busy;
    $("draft-text").readOnly = !pending;
    $("char-count").textContent = d ? `${text.length} / ${max} characters` + (edited ? " · edited" : "") : "";
  }

  async function decide(kind) {
    const d = state.current;
    if (!d || d.status !== "pending_review" || state.busy) return;
    const id = d.id;
    state.undone = null;
    const requests = {
      approve: ["Approving the draft", `/api/drafts/${encodeURIComponent(id)}/approve`, undefined],
      edit: ["Saving and approving the draft", `/api/drafts/${encodeURIComponent(id)}/edit`, { text: $("draft-text").value }],
      reject: ["Rejecting the draft", `/api/drafts/${encodeURIComponent(id)}/reject`, { reason: $("reject-reason").value.trim() || null }],
    };
    const [action, path, body] = requests[kind];
    let conflict = false, newer = null;
    const result = await run($("conversation"), action, async () => {
      try {
        return await api("POST", path, body);
      } catch (err) {
        conflict = err instanceof ApiFailure && err.status === 409;
        newer = conflict ? err.data.newer_draft_id || null : null;
        throw err;
      }
    });
    if (result) {
      if (result.draft.release_at && state.meta) state.held = { id: id, at: Date.now() + state.meta.undo_ms };
      afterDecision(result.draft);
      setDraft(result.draft, true);
      follow(result.draft, 0);
    } else if (conflict) {
      refreshDraft(id);          // show what the other decision was, keep the error visible
      offerNewer(newer);
    }
  }

  /** Take back an approval still held for undo: back to pending, nothing sent. Too late (409):
   * the desk says so (it was released and is sent once) and shows its current state. */
  async function undo() {
    const d = state.current;
    if (!d || !d.release_at || state.busy) return;
    const id = d.id;
    let tooLate = false;
    const result = await run($("conversation"), "Undoing the approval", async () => {
      try {
        return await api("POST", `/api/drafts/${encodeURIComponent(id)}/undo`);
      } catch (err) {
        tooLate = err instanceof ApiFailure && err.status === 409;
        throw err;
      }
    });
    if (result) {
      stopPolling();
      state.held = null;
      state.undone = id;
      setDraft(result.draft, true);
      loadInbox(false);
    } else if (tooLate) {
      refreshDraft(id);
    }
  }

  // An out-of-date draft was refused (409): offer the draft that answers the newer messages.
  function offerNewer(newerId) {
    const button = $("open-newer");
    button.hidden = !newerId;
    button.dataset.draft = newerId || "";
  }

  async function refreshDraft(id) {
    try {
      const r = await api("GET", `/api/drafts/${encodeURIComponent(id)}`);
      if (state.current && state.current.id === id) {
        setDraft(r.draft, true);
        if (r.draft.status !== "pending_review") afterDecision(r.draft);
        renderMessages(r.draft);
        follow(r.draft, 0);
      }
    } catch (err) {
      showError(explain("Reloading the draft", err));
    }
  }

  // ------------------------------------------------------------------ live send status
  function startPolling(id) {
    stopPolling();
    const every = state.meta ? state.meta.poll_interval_ms : 1000;
    const tick = async () => {
      try {
        const r = await api("GET", `/api/drafts/${encodeURIComponent(id)}`);
        if (!state.current || state.current.id !== id) return;
        setDraft(r.draft, false);
        if (r.draft.status === "sent") {            // show the sent text now, then the chat's copy
          renderMessages(r.draft);
          watchReply(r.draft, 0);
          return;
        }
        if (!WAITING.has(r.draft.status) || r.draft.send_error) return;
      } catch (err) {
        showError(explain("Checking the send status", err));
        if (err instanceof ApiFailure && err.status === 401) { signOut(false); return; }
      }
      state.pollTimer = setTimeout(tick, every);
    };
    state.pollTimer = setTimeout(tick, every);
  }

  function stopPolling() {
    if (state.pollTimer) clearTimeout(state.pollTimer);
    state.pollTimer = null;
  }

  // ------------------------------------------------------------------ accounts
  const STATE_HELP = {
    running: "Reading and sending", degraded: "Part of the site is not recognised: check the site spec",
    needs_login: "Waiting for a person to log in (./run login ACCOUNT)", failed: "Stopped after repeated errors",
    stopped: "Stopped", unknown: "No supervisor answered",
  };

  /** Load the panel; `note` (what the person just did) is shown after it, never wiped by it. */
  async function loadAccounts(note) {
    const data = await run($("accounts"), "Loading the accounts", () => api("GET", "/api/accounts"));
    if (!data) return;
    $("accounts").hidden = false;
    const rows = $("accounts-rows");
    rows.replaceChildren();
    const labels = [...document.querySelectorAll("#accounts-table thead th")].map((th) => th.textContent.trim());
    for (const a of data.accounts) {
      const tr = el("tr");
      tr.dataset.account = a.account;
      tr.append(el("th", null, a.account));
      tr.firstChild.scope = "row";
      tr.append(el("td", null, a.site));
      const st = el("td");
      const badge = el("span", `badge state-${a.state}`, a.state.replace("_", " "));
      badge.title = STATE_HELP[a.state] || a.state;
      st.append(badge);
      tr.append(st);
      tr.append(el("td", null, a.last_pass_at ? new Date(a.last_pass_at * 1000).toLocaleTimeString() : "never"));
      tr.append(el("td", null, a.messages_today));
      tr.append(el("td", null, a.missing.map((m) => m.element).join(", ") || "—"));
      tr.append(el("td", "error-cell", a.last_error || "—"));
      const act = el("td");
      if (a.retryable) {
        const b = el("button", null, "Retry now");
        b.type = "button";
        b.setAttribute("aria-label", `Retry now: ${a.account}`);
        b.addEventListener("click", () => retryAccount(a.account));
        act.append(b);
      }
      tr.append(act);
      [...tr.children].forEach((cell, i) => { if (labels[i]) cell.dataset.label = labels[i]; });
      rows.append(tr);
    }
    $("accounts-empty").hidden = data.accounts.length > 0;
    $("accounts-note").textContent = note || (data.supervisor ? "" : "The supervisor did not answer: states are unknown.");
  }

  async function retryAccount(account) {
    const r = await run($("accounts"), `Retrying ${account}`,
      () => api("POST", `/api/accounts/${encodeURIComponent(account)}/retry`));
    await loadAccounts(r ? `Retry asked for ${account}: now ${r.state.replace("_", " ")}.` : undefined);
  }

  // ------------------------------------------------------------------ keyboard
  function move(step) {
    if (!state.drafts.length) return;
    let i = state.drafts.findIndex((d) => d.id === state.selected);
    i = i < 0 ? (step > 0 ? 0 : state.drafts.length - 1) : Math.min(state.drafts.length - 1, Math.max(0, i + step));
    const id = state.drafts[i].id;
    openDraft(id).then(() => {
      if (state.selected !== id) return;            // a later j/k press moved on: its item gets the focus
      const btn = [...document.querySelectorAll(".draft-item")].find((b) => b.dataset.id === id);
      if (btn) btn.focus();
    });
  }

  function onKey(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || $("desk").hidden) return;
    const tag = ev.target && ev.target.tagName;
    if (tag === "TEXTAREA" || tag === "INPUT" || tag === "SELECT") {
      if (ev.key === "Escape") ev.target.blur();
      return;
    }
    switch (ev.key) {
      case "a":
        if (!$("approve").disabled) decide("approve");
        else if (state.current && $("draft-text").value !== state.original) showError("The reply was edited: use Save & Approve to send the edited text.");
        break;
      case "z": if (!$("undo").hidden) undo(); break;
      case "j": case "n": move(1); break;
      case "k": case "p": move(-1); break;
      case "e": if (!$("conv-body").hidden) { $("draft-text").focus(); ev.preventDefault(); } break;
      default: return;
    }
  }

  // what the other views of the page (conversations.js) share with this one
  window.replydesk = { api, explain, el, when, run, showError, clearError, ApiFailure,
    openDraft: async (id) => { await loadInbox(false); await openById(id); },
    signOut: () => signOut(false), state };

  // ------------------------------------------------------------------ wiring
  document.addEventListener("DOMContentLoaded", () => {
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const token = $("token").value.trim();
      if (token) connect(token);
    });
    $("sign-out").addEventListener("click", () => signOut(true));
    $("error-close").addEventListener("click", clearError);
    $("open-newer").addEventListener("click", () => {
      const id = $("open-newer").dataset.draft;
      clearError();
      if (id) { loadInbox(false); openById(id); }
    });
    $("refresh").addEventListener("click", () => loadInbox(false));
    $("accounts-refresh").addEventListener("click", () => loadAccounts());  // a refresh clears the note
    $("more").addEventListener("click", () => loadInbox(true));
    $("f-account").addEventListener("change", () => loadInbox(false));
    $("f-class").addEventListener("change", () => loadInbox(false));
    $("f-status").addEventListener("change", () => loadInbox(false));
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && state.inboxTimer) { stopInboxPolling(); pollInbox(); }
    });
    $("draft-text").addEventListener("input", updateButtons);
    $("approve").addEventListener("click", () => decide("approve"));
    $("draft-form").addEventListener("submit", (ev) => { ev.preventDefault(); decide("edit"); });
    $("reject").addEventListener("click", () => decide("reject"));
    $("undo").addEventListener("click", undo);
    document.addEventListener("keydown", onKey);
    updateButtons();
    const linked = tokenFromLink();
    if (linked) connect(linked);
    else if (state.token) connect(state.token);
    else $("token").focus();
  });
})();
