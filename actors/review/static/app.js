/* replydesk review desk. Plain JS, no dependencies.
 * Every piece of chat or draft text is put on the page with textContent, never parsed as HTML: it is
 * hostile data. The token lives in sessionStorage and travels only in the Authorization header. */
"use strict";
(() => {
  const TOKEN_KEY = "replydesk.reviewToken";
  const $ = (id) => document.getElementById(id);
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    meta: null, drafts: [], cursor: null, selected: null, current: null, original: "",
    busy: false, pollTimer: null,
  };
  const WAITING = new Set(["approved", "edited", "sending"]);

  class ApiFailure extends Error {
    constructor(status, message) { super(message); this.status = status; }
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
      throw new ApiFailure(resp.status, detail);
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
    $("token-form").hidden = true;
    $("session").hidden = false;
    $("desk").hidden = false;
    await loadInbox(false);
    $("inbox").focus();
  }

  function signOut(clearMessage) {
    stopPolling();
    state.token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    $("desk").hidden = true;
    $("session").hidden = true;
    $("token-form").hidden = false;
    $("token").value = "";
    $("token").focus();
    if (clearMessage) clearError();
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

  // ------------------------------------------------------------------ inbox
  async function loadInbox(append) {
    const params = new URLSearchParams();
    if ($("f-account").value) params.set("account", $("f-account").value);
    if ($("f-class").value) params.set("classification", $("f-class").value);
    if (append && state.cursor) params.set("cursor", state.cursor);
    const page = await run($("inbox"), "Loading the inbox", () => api("GET", "/api/drafts?" + params));
    if (!page) return;
    state.drafts = append ? state.drafts.concat(page.drafts) : page.drafts;
    state.cursor = page.next_cursor;
    renderInbox();
  }

  function renderInbox() {
    const list = $("draft-list");
    list.replaceChildren();
    for (const d of state.drafts) {
      const li = el("li");
      const btn = el("button", "draft-item");
      btn.type = "button";
      btn.dataset.id = d.id;
      if (state.selected === d.id) btn.setAttribute("aria-current", "true");
      const line1 = el("span", "line1");
      line1.append(el("span", null, `${d.account_id} · ${d.conversation_id}`), el("span", "badge", d.classification));
      btn.append(line1, el("span", "snippet", d.text));
      btn.addEventListener("click", () => openDraft(d.id));
      li.append(btn);
      list.append(li);
    }
    $("inbox-empty").hidden = state.drafts.length > 0;
    $("more").hidden = !state.cursor;
  }

  function removeFromInbox(id) {
    state.drafts = state.drafts.filter((d) => d.id !== id);
    renderInbox();
  }

  // ------------------------------------------------------------------ conversation
  async function openDraft(id) {
    const draft = state.drafts.find((d) => d.id === id) || (state.current && state.current.id === id ? state.current : null);
    if (!draft) return;
    stopPolling();
    state.selected = id;
    renderInbox();
    const path = `/api/conversations/${encodeURIComponent(draft.account_id)}/${encodeURIComponent(draft.conversation_id)}`;
    const conv = await run($("conversation"), "Opening the conversation", () => api("GET", path));
    if (!conv || state.selected !== id) return;
    $("conv-placeholder").hidden = true;
    $("conv-body").hidden = false;
    $("conv-account").textContent = conv.account_id;
    $("conv-id").textContent = conv.conversation_id;
    $("conv-class").textContent = draft.classification || "";
    const list = $("messages");
    list.replaceChildren();
    for (const m of conv.messages) {
      const li = el("li", "msg " + (m.direction === "out" ? "out" : "in"));
      li.append(el("div", "who", `${m.sender} · ${m.sent_at}`), el("div", "text", m.text));
      list.append(li);
    }
    list.scrollTop = list.scrollHeight;
    const fresh = conv.draft && conv.draft.id === id ? conv.draft : draft;
    setDraft(fresh, true);
    if (WAITING.has(fresh.status)) startPolling(id);
  }

  function setDraft(draft, replaceText) {
    state.current = draft;
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
    };
    const node = $("draft-status");
    let text = texts[d.status] || `Status: ${d.status}`;
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
    $("draft-text").readOnly = !pending;
    $("char-count").textContent = d ? `${text.length} / ${max} characters` + (edited ? " · edited" : "") : "";
  }

  async function decide(kind) {
    const d = state.current;
    if (!d || d.status !== "pending_review" || state.busy) return;
    const id = d.id;
    const requests = {
      approve: ["Approving the draft", `/api/drafts/${encodeURIComponent(id)}/approve`, undefined],
      edit: ["Saving and approving the draft", `/api/drafts/${encodeURIComponent(id)}/edit`, { text: $("draft-text").value }],
      reject: ["Rejecting the draft", `/api/drafts/${encodeURIComponent(id)}/reject`, { reason: $("reject-reason").value.trim() || null }],
    };
    const [action, path, body] = requests[kind];
    let conflict = false;
    const result = await run($("conversation"), action, async () => {
      try {
        return await api("POST", path, body);
      } catch (err) {
        conflict = err instanceof ApiFailure && err.status === 409;
        throw err;
      }
    });
    if (result) {
      removeFromInbox(id);
      setDraft(result.draft, true);
      if (WAITING.has(result.draft.status)) startPolling(id);
    } else if (conflict) {
      refreshDraft(id);          // show what the other decision was, keep the error visible
    }
  }

  async function refreshDraft(id) {
    try {
      const r = await api("GET", `/api/drafts/${encodeURIComponent(id)}`);
      if (state.current && state.current.id === id) {
        setDraft(r.draft, true);
        if (r.draft.status !== "pending_review") removeFromInbox(id);
        if (WAITING.has(r.draft.status)) startPolling(id);
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

  // ------------------------------------------------------------------ keyboard
  function move(step) {
    if (!state.drafts.length) return;
    let i = state.drafts.findIndex((d) => d.id === state.selected);
    i = i < 0 ? (step > 0 ? 0 : state.drafts.length - 1) : Math.min(state.drafts.length - 1, Math.max(0, i + step));
    const id = state.drafts[i].id;
    openDraft(id).then(() => {
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
      case "j": case "n": move(1); break;
      case "k": case "p": move(-1); break;
      case "e": if (!$("conv-body").hidden) { $("draft-text").focus(); ev.preventDefault(); } break;
      default: return;
    }
  }

  // ------------------------------------------------------------------ wiring
  document.addEventListener("DOMContentLoaded", () => {
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const token = $("token").value.trim();
      if (token) connect(token);
    });
    $("sign-out").addEventListener("click", () => signOut(true));
    $("error-close").addEventListener("click", clearError);
    $("refresh").addEventListener("click", () => loadInbox(false));
    $("more").addEventListener("click", () => loadInbox(true));
    $("f-account").addEventListener("change", () => loadInbox(false));
    $("f-class").addEventListener("change", () => loadInbox(false));
    $("draft-text").addEventListener("input", updateButtons);
    $("approve").addEventListener("click", () => decide("approve"));
    $("draft-form").addEventListener("submit", (ev) => { ev.preventDefault(); decide("edit"); });
    $("reject").addEventListener("click", () => decide("reject"));
    document.addEventListener("keydown", onKey);
    updateButtons();
    if (state.token) connect(state.token);
    else $("token").focus();
  });
})();
