/* replydesk review desk: the Conversations view (every conversation, reply by hand, redraft,
 * Retry AI, close) and the Dead letters panel. Uses what app.js shares as window.replydesk; all
 * chat text goes on the page with textContent only. */
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const STATE_LABELS = {
    new: "Waiting for the AI", draft: "Draft to review", ai_failed: "AI failed",
    no_reply_needed: "No reply needed", spam_or_scam: "Spam or scam", abusive: "Abusive",
    sending: "Sending", rejected: "Rejected", answered: "Answered", closed: "Closed",
  };
  const cv = { items: [], cursor: null, selected: null, current: null, lastMessageId: null, pollTimer: null };
  const R = () => window.replydesk;

  // ------------------------------------------------------------------ views
  function show(view) {
    for (const tab of document.querySelectorAll("#views button")) {
      const on = tab.dataset.view === view;
      tab.setAttribute("aria-pressed", on ? "true" : "false");
      $(tab.dataset.view).hidden = !on;
    }
    if (view === "conv-view") loadList(false);
    if (view === "dead-view") loadDead();
  }

  function fill(select, values, labels) {
    const keep = select.options[0];
    select.replaceChildren(keep);
    for (const v of values) {
      const opt = R().el("option", null, (labels && labels[v]) || v);
      opt.value = v;
      select.append(opt);
    }
  }

  // ------------------------------------------------------------------ the list
  function query() {
    const p = new URLSearchParams();
    if ($("cv-q").value.trim()) p.set("q", $("cv-q").value.trim());
    if ($("cv-state").value) p.set("state", $("cv-state").value);
    if ($("cv-account").value) p.set("account", $("cv-account").value);
    return p;
  }

  async function loadList(append) {
    const p = query();
    if (append && cv.cursor) p.set("cursor", cv.cursor);
    const page = await R().run($("cv-list-pane"), "Loading the conversations", () => R().api("GET", "/api/conversations?" + p));
    if (!page) return;
    cv.items = append ? cv.items.concat(page.conversations) : page.conversations;
    cv.cursor = page.next_cursor;
    cv.partial = page.search_complete === false;
    renderList();
  }

  function key(c) { return `${c.account_id}/${c.conversation_id}`; }

  function renderList() {
    const list = $("cv-list");
    list.replaceChildren();
    for (const c of cv.items) {
      const li = R().el("li");
      const btn = R().el("button", "draft-item conv-item");
      btn.type = "button";
      btn.dataset.key = key(c);
      btn.dataset.state = c.state;
      if (cv.selected === key(c)) btn.setAttribute("aria-current", "true");
      const line1 = R().el("span", "line1");
      const badges = R().el("span", "badges");
      if (c.unread) badges.append(R().el("span", "badge new-badge", `${c.unread} unread`));
      badges.append(R().el("span", `badge cv-state cv-${c.state}`, STATE_LABELS[c.state] || c.state));
      line1.append(R().el("span", "contact", c.contact), badges);
      const line2 = R().el("span", "line2 meta", `${c.account_id} · ${R().when(c.last_at)}`);
      const snippet = R().el("span", "snippet", (c.last_direction === "out" ? "You: " : "") + (c.last_text || ""));
      btn.append(line1, snippet, line2);
      btn.addEventListener("click", () => openConversation(c));
      li.append(btn);
      list.append(li);
    }
    $("cv-count").textContent = `(${cv.items.length}${cv.cursor ? "+" : ""})`;
    $("cv-empty").hidden = cv.items.length > 0;
    $("cv-partial").hidden = !cv.partial;
    $("cv-more").hidden = !cv.cursor;
  }

  // ------------------------------------------------------------------ one conversation
  function paths(c) {
    const a = encodeURIComponent(c.account_id), id = encodeURIComponent(c.conversation_id);
    return { messages: `/api/conversations/${a}/${id}`, summary: `/api/conversation-summary/${a}/${id}`,
      act: (what) => `/api/conversations/${a}/${id}/${what}` };
  }

  /** Open a conversation the reviewer chose (spinner; errors shown). */
  async function openConversation(c) {
    cv.selected = key(c);
    renderList();
    const p = paths(c);
    const both = await R().run($("cv-pane"), "Opening the conversation",
      () => Promise.all([R().api("GET", p.messages), R().api("GET", p.summary)]));
    if (!both || cv.selected !== key(c)) return;
    $("cv-status").textContent = "";
    show1(c, both);
    if (window.matchMedia("(max-width: 900px)").matches) $("cv-pane").scrollIntoView();   // one column
  }

  /** Re-read the open conversation after an action, leaving its message and any error shown. */
  async function reload(c) {
    const p = paths(c);
    try {
      const both = await Promise.all([R().api("GET", p.messages), R().api("GET", p.summary)]);
      if (cv.selected === key(c)) show1(c, both);
    } catch (err) {
      R().showError(R().explain("Reloading the conversation", err));
    }
  }

  function show1(c, [conv, sum]) {
    cv.current = sum.conversation;
    cv.items = cv.items.map((x) => (key(x) === key(c) ? sum.conversation : x));
    renderList();
    $("cv-placeholder").hidden = true;
    $("cv-body").hidden = false;
    renderDetail(sum, conv.messages);
  }

  function renderDetail(sum, messages) {
    const c = sum.conversation;
    $("cv-contact").textContent = c.contact;
    $("cv-where").textContent = `${c.account_id} · ${c.conversation_id}`;
    $("cv-state-badge").textContent = STATE_LABELS[c.state] || c.state;
    $("cv-state-badge").dataset.state = c.state;
    $("cv-state-badge").className = `badge cv-state cv-${c.state}`;
    const reason = c.state === "ai_failed" ? `The AI could not draft this conversation: ${c.reason || "unknown reason"}`
      : c.state === "closed" ? `Closed without a reply by ${c.closed_by} ${R().when(c.closed_at)}`
      : c.state === "rejected" && c.reason ? `Draft rejected: ${c.reason}` : "";
    $("cv-reason").textContent = reason;
    $("cv-reason").hidden = !reason;
    const dead = $("cv-dead");
    dead.replaceChildren();
    for (const d of sum.dead_letters) {
      if (c.state === "ai_failed" && d.consumer === "ai" && d.reason === c.reason) continue;   // said above
      dead.append(R().el("li", null, `Dead letter (${d.consumer}, ${R().when(d.at)}): ${d.reason}`));
    }
    if (sum.ai_failure && c.state === "ai_failed" && !sum.dead_letters.length) {
      dead.append(R().el("li", null, `AI failure (${R().when(sum.ai_failure.at)}): ${sum.ai_failure.reason}`));
    }
    dead.hidden = !dead.children.length;
    $("cv-open-draft").hidden = c.state !== "draft" || !c.draft_id;
    $("cv-retry").hidden = c.state !== "ai_failed";
    $("cv-close").disabled = c.state === "closed" || c.state === "sending";
    const list = $("cv-messages");
    list.replaceChildren();
    for (const m of messages) {
      const li = R().el("li", "msg " + (m.direction === "out" ? "out" : "in"));
      li.append(R().el("div", "who", `${m.sender} · ${m.sent_at}`), R().el("div", "text", m.text));
      list.append(li);
    }
    list.scrollTop = list.scrollHeight;
    cv.lastMessageId = messages.length ? messages[messages.length - 1].message_id : null;
  }

  /** A POST on the open conversation; a 409 with newer messages reloads it to show them. */
  async function act(what, action, body, done) {
    const c = cv.current;
    if (!c) return;
    let newer = null;
    const r = await R().run($("cv-pane"), action, async () => {
      try {
        return await R().api("POST", paths(c).act(what), { ...body, last_message_id: cv.lastMessageId });
      } catch (err) {
        if (err instanceof R().ApiFailure && err.status === 409 && err.data.newer_messages) newer = err.data.newer_messages;
        throw err;
      }
    });
    if (r) $("cv-status").textContent = done(r);
    else if (newer) $("cv-status").textContent = `New from ${c.contact}: ` + newer.map((m) => m.text).join(" / ");
    await reload(c);
    if (r && what === "reply") watchSend(r.draft.id);
    return r;
  }

  /** After a reply by hand: follow its send status until it is sent (or fails). */
  function watchSend(id) {
    if (cv.pollTimer) clearTimeout(cv.pollTimer);
    const every = (R().state.meta && R().state.meta.poll_interval_ms) || 1000;
    const tick = async () => {
      cv.pollTimer = null;
      try {
        const r = await R().api("GET", `/api/drafts/${encodeURIComponent(id)}`);
        if (r.draft.status === "sent") {
          $("cv-status").textContent = `Your reply was sent ✓ ${R().when(r.draft.times.sent)}`;
          if (cv.current) reload(cv.current);
          return;
        }
        if (r.draft.send_error || r.draft.status === "superseded") {
          $("cv-status").textContent = `Not sent: ${r.draft.send_error || r.draft.superseded_reason}`;
          return;
        }
      } catch (err) {
        R().showError(R().explain("Checking the send status", err));
        return;
      }
      cv.pollTimer = setTimeout(tick, every);
    };
    cv.pollTimer = setTimeout(tick, every);
  }

  // ------------------------------------------------------------------ dead letters
  async function loadDead(note) {
    const consumer = $("dead-consumer").value;
    const data = await R().run($("dead-view"), "Loading the dead letters",
      () => R().api("GET", "/api/dead-letters" + (consumer ? "?consumer=" + encodeURIComponent(consumer) : "")));
    if (!data) return;
    const list = $("dead-list");
    list.replaceChildren();
    for (const d of data.dead_letters) {
      const li = R().el("li", "dead-item");
      li.dataset.consumer = d.consumer;
      const head = R().el("p", "line1");
      head.append(R().el("span", "badge", d.consumer), R().el("span", "meta", ` ${R().when(d.at)} · ${d.routing_key || ""}`));
      li.append(head);
      if (d.conversation_id) li.append(R().el("p", "meta", `${d.account_id} · ${d.conversation_id}`));
      li.append(R().el("p", "reason", d.reason));
      if (d.retryable) {
        const b = R().el("button", null, "Retry");
        b.type = "button";
        b.setAttribute("aria-label", `Retry: ${d.conversation_id}`);
        b.addEventListener("click", () => retryDead(d));
        li.append(b);
      }
      list.append(li);
    }
    $("dead-empty").hidden = data.dead_letters.length > 0;
    $("dead-note").textContent = note || "";
  }

  async function retryDead(d) {
    const r = await R().run($("dead-view"), "Retrying", () => R().api("POST", `/api/dead-letters/${encodeURIComponent(d.id)}/retry`, {}));
    if (r) await loadDead(r.queued ? `Asked the AI again for ${d.conversation_id}.` : `Already asked again for ${d.conversation_id}.`);
  }

  // ------------------------------------------------------------------ wiring
  document.addEventListener("replydesk:signedin", (ev) => {
    const meta = ev.detail;
    fill($("cv-account"), meta.accounts);
    fill($("cv-state"), Object.keys(STATE_LABELS), STATE_LABELS);
    $("views").hidden = false;
    show("desk");
  });
  document.addEventListener("replydesk:signedout", () => {
    $("views").hidden = true;
    $("conv-view").hidden = true;
    $("dead-view").hidden = true;
    if (cv.pollTimer) clearTimeout(cv.pollTimer);
    cv.current = null;
  });
  document.addEventListener("DOMContentLoaded", () => {
    for (const tab of document.querySelectorAll("#views button")) tab.addEventListener("click", () => show(tab.dataset.view));
    $("cv-filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadList(false); });
    $("cv-state").addEventListener("change", () => loadList(false));
    $("cv-account").addEventListener("change", () => loadList(false));
    $("cv-more").addEventListener("click", () => loadList(true));
    $("cv-reply-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const text = $("cv-reply").value;
      if (!text.trim()) { R().showError("Write the reply first: it is empty."); return; }
      const r = await act("reply", "Sending the reply", { text },
        () => "Your reply is approved and on its way…");
      if (r) $("cv-reply").value = "";
    });
    $("cv-redraft-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const instruction = $("cv-instruction").value.trim();
      if (!instruction) { R().showError("Write what the AI should do differently (e.g. shorter)."); return; }
      const r = await act("redraft", "Asking for a new draft", { instruction },
        (x) => x.queued ? "Asked the AI for a new draft; it appears in Drafts." : "That was asked already; the draft is on its way.");
      if (r) $("cv-instruction").value = "";
    });
    $("cv-retry").addEventListener("click", () => act("retry-ai", "Retrying the AI", {},
      (x) => x.queued ? "Asked the AI again; the draft appears in Drafts." : "Already asked again; the draft is on its way."));
    $("cv-close").addEventListener("click", () => act("close", "Closing the conversation", {},
      () => "Closed without a reply."));
    $("cv-open-draft").addEventListener("click", () => {
      if (!cv.current || !cv.current.draft_id) return;
      show("desk");
      R().openDraft(cv.current.draft_id);
    });
    $("dead-filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadDead(); });
    $("dead-consumer").addEventListener("change", () => loadDead());
  });
})();
