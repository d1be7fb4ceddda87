"""`./run chaos`: the whole stack under faults, judged against the stand-ins' own records.

Starts the stand-ins, a RabbitMQ node of its own (own node name, ports, mnesia and log dirs;
never the shared broker on 5672), a MongoDB-wire server on a data directory of its own, a local
Ray and the supervisor. While N messages flow over many conversations and a scripted reviewer
approves drafts through the review desk's HTTP API (as a person would), it kills every actor kind
(the supervisor too), SIGKILLs and restarts the database on its data directory, restarts the
broker and disconnects every client, and injects AI and Sheets faults through the stand-ins'
admin APIs. After each fault a probe message is written in a conversation of its own: the
fault's recovery time is fault -> the probe's reply shown at the chat site (for a Sheets fault:
-> the probe's row in the sheet), and where the probe's time went is logged.

Ground truth is never our own store: what was injected and what was sent to each contact is the
chat stand-in's record (`/_admin/conversations/{cid}/messages`), the sheet is the Sheets fake's
rows, approvals are the reviewer's own log. Columns:

- injected / stored / lost / duplicated messages: incoming messages on the site; stored by
  site id; site messages never stored; site ids stored twice
- unanswered: conversations whose newest site message is the contact's
- answered twice: two replies in a row at the site where the second answers no message the first
  did not (by the drafts' `answers_seq`); two replies in a row that answer different messages
  (the contact wrote while the first was being clicked) are shown in a column of their own
- sheet rows missing / duplicated: site messages and site-shown replies without their row, and
  row ids (or incoming messages) appearing twice
- sends lost / duplicated: approvals answered 200 whose reply never reached the site although
  the draft was not superseded; the same reply text shown twice in a conversation
- dead letters by reason (the `dead_letters` collection)

`--smoke` is the short variant (about 100 messages, a few faults) the suite runs; exit status 1
when any lost/duplicated/unanswered/answered-twice column is not 0.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import requests

ZERO_COLUMNS = ("messages_lost", "messages_duplicated", "unanswered", "answered_twice",
                "sheet_rows_missing", "sheet_rows_duplicated", "sends_lost", "sends_duplicated")

# every fault the long run injects, in order; the smoke run takes a few of them
FAULTS = ["kill:router", "kill:ai", "ai:500", "kill:browser", "mongo:sigkill", "kill:sheets",
          "sheets:500_applied", "kill:review", "broker:restart", "kill:gate", "ai:429",
          "kill:supervisor", "broker:disconnect", "sheets:429", "kill:notify", "mongo:sigkill",
          "kill:browser", "kill:router"]
SMOKE_FAULTS = ["kill:browser", "mongo:sigkill", "sheets:500_applied", "broker:restart"]


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.3) -> Any:
    from standins.stack import wait_for
    return wait_for(pred, timeout, what, interval, tolerate=(Exception,))


class Reviewer(threading.Thread):
    """Approves every pending draft through the desk's HTTP API; its own log of approvals."""

    def __init__(self, desk_url: Callable[[], str | None], token: str):
        super().__init__(name="reviewer", daemon=True)
        self.desk_url = desk_url
        self.auth = {"Authorization": f"Bearer {token}"}
        self.approved: dict[str, dict[str, Any]] = {}      # draft id -> the draft as listed
        self.conflicts = 0
        self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.3):
            url = self.desk_url()
            if not url:
                continue
            try:
                r = requests.get(f"{url}/api/drafts?status=pending_review&limit=200", headers=self.auth,
                                 timeout=10)
                if r.status_code != 200:
                    self.errors += 1
                    continue
                for d in r.json()["drafts"]:
                    if d["id"] in self.approved:
                        continue
                    a = requests.post(f"{url}/api/drafts/{d['id']}/approve", headers=self.auth, timeout=15)
                    if a.status_code == 200:
                        self.approved[d["id"]] = d
                    elif a.status_code == 409:
                        self.conflicts += 1
                    else:
                        self.errors += 1
            except requests.RequestException:
                self.errors += 1          # the desk is restarting: look again


class Injector(threading.Thread):
    """Writes `n` incoming messages over `conversations`, at `rate` per second."""

    def __init__(self, site, n: int, conversations: int, rate: float, seed: int = 7,
                 numeric: bool = False):
        super().__init__(name="injector", daemon=True)
        self.site, self.n, self.convs, self.rate = site, n, conversations, rate
        self.numeric = numeric    # phoenix: conversation ids are numeric member ids
        self.rng = random.Random(seed)
        self.injected = 0
        self.conversations: set[str] = set()
        self.lock = threading.Lock()

    def inject(self, conv: str, text: str) -> None:
        for _ in range(100):
            try:
                self.site.inject(conv, f"Contact {conv}", text)
                break
            except Exception:
                time.sleep(0.2)
        with self.lock:
            self.conversations.add(conv)

    def run(self) -> None:
        for i in range(self.n):
            n = self.rng.randrange(self.convs)
            conv = str(1000000 + n) if self.numeric else f"c{n:04d}"
            self.inject(conv, f"q{i:05d} about {conv}: how is your week going, any plans?")
            self.injected += 1
            time.sleep(1 / self.rate)


def _site_messages(site_url: str, conv: str) -> list[dict[str, Any]]:
    r = requests.get(f"{site_url}/_admin/conversations/{conv}/messages", timeout=10)
    r.raise_for_status()
    return r.json()


def _second_reply(store, conv: str, a: dict[str, Any], b: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Two replies in a row at the site: did the second answer the same messages as the first?

    The site shows *when* a reply was clicked, not what it was written from; the drafts record
    that (`answers_seq`: the newest message each was written from). If a contact's message
    exists that the second reply answers and the first did not, the two answer different
    messages: the contact wrote while the first reply was being clicked (after its last read of
    the page), so the site shows it above the first reply, and the next draft answered it
    ("race"). Otherwise, or when either draft cannot be found, the contact was answered twice."""
    def draft(m):
        return store.drafts.coll.find_one({"conversation_id": conv, "status": "sent", "text": m["text"]},
                                          {"answers_seq": 1, "created_at": 1})
    da, db = draft(a), draft(b)
    detail = {"first": a["text"][:60], "second": b["text"][:60],
              "first_answers_seq": (da or {}).get("answers_seq"),
              "second_answers_seq": (db or {}).get("answers_seq")}
    if not da or not db or da.get("answers_seq") is None or db.get("answers_seq") is None:
        return "twice", detail
    between = store.messages.coll.count_documents(
        {"conversation_id": conv, "direction": "in",
         "seq": {"$gt": da["answers_seq"], "$lte": db["answers_seq"]}})
    detail["messages_only_the_second_answers"] = between
    return ("race" if between else "twice"), detail


class Chaos:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.recovery: list[dict[str, Any]] = []
        self.probes = 0

    # ------------------------------------------------------------------ faults
    def fault(self, name: str) -> None:
        import ray

        from contracts import names
        kind, _, what = name.partition(":")
        ns = self.config.settings.namespace
        if kind == "kill":
            if what == "supervisor":
                ray.kill(self.handle, no_restart=False)       # Ray restarts it; it adopts its children
                return
            target = {"router": names.ROUTER, "gate": names.GATE, "sheets": names.SHEETS,
                      "review": names.REVIEW, "notify": names.NOTIFY, "ai": "ai:0",
                      "browser": names.browser(self.account.site, self.account.id)}[what]
            try:
                ray.kill(ray.get_actor(target, namespace=ns), no_restart=True)
            except ValueError:
                log(f"{target} not running at the moment of the fault")
        elif kind == "mongo":
            self.mongo.stop(kill=True)
            time.sleep(1.0)
            self.mongo.start()
        elif name == "broker:restart":
            self.broker.restart()
        elif name == "broker:disconnect":
            self.broker.close_connections()
        elif name == "ai:500":
            self.stack.ai.fault_ratio("500", 0.5, seed=3)
            threading.Timer(self.args.fault_window_s, lambda: self.stack.ai.fault_ratio("500", 0)).start()
        elif name == "ai:429":
            self.stack.ai.fault_ratio("429", 0.5, retry_after_ms=200, seed=4)
            threading.Timer(self.args.fault_window_s, lambda: self.stack.ai.fault_ratio("429", 0)).start()
        elif name == "sheets:500_applied":
            self.stack.sheets.faults(next_500_applied=2)
        elif name == "sheets:429":
            self.stack.sheets.faults(next_429=3)
        else:
            raise ValueError(f"unknown fault {name}")

    def probe(self, name: str, t0: float) -> float | None:
        self.probes += 1
        conv = str(2000000 + self.probes) if self.args.theme == "phoenix" else f"probe{self.probes:02d}"
        text = f"p{self.probes:02d} after {name}: are you still there, anyone?"
        injected_at = time.time()
        self.injector.inject(conv, text)
        if "sheets" in name:    # the sheet's path recovered: the probe's row is in the sheet
            def back() -> bool:
                return any(r and len(r) > 2 and conv in r for r in self.stack.sheets.rows()[1:])
            what = f"the probe's sheet row after {name}"
        else:                   # the answer path recovered: the probe's reply shows on the site
            def back() -> bool:
                return bool((m := _site_messages(self.stack.site.url, conv)) and m[-1]["direction"] == "out")
            what = f"the probe reply after {name}"
        try:
            wait_until(back, self.args.recovery_timeout_s, what, interval=0.2)
            took = time.monotonic() - t0
        except TimeoutError:
            took = None
        log(f"  probe {conv}: {self._stages(conv, injected_at)}")
        return took

    def _stages(self, conv: str, injected_at: float) -> str:
        """Where a probe's time went (seconds after it was written on the site), from the
        store's own stamps: what a slow recovery is made of."""
        from datetime import datetime
        from actors.store import Store

        def after(stamp: Any) -> str:
            if isinstance(stamp, str):
                stamp = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            return "-" if stamp is None else f"{stamp.timestamp() - injected_at:.1f}s"
        try:
            store = Store.from_config(self.config)
            msg = store.messages.coll.find_one({"conversation_id": conv, "direction": "in"}) or {}
            draft = store.drafts.coll.find_one({"conversation_id": conv}, sort=[("created_at", -1)]) or {}
        except Exception as exc:      # the database may be the fault being recovered from
            return f"stages unknown ({type(exc).__name__})"
        return (f"stored {after(msg.get('seen_at'))}, drafted {after(draft.get('created_at'))}, "
                f"approved {after(draft.get('approved_at'))}, send began {after(draft.get('sending_at'))}, "
                f"sent {after(draft.get('sent_at'))}")

    # ------------------------------------------------------------------ run
    def run(self) -> dict[str, Any]:
        args = self.args
        t_start = time.monotonic()
        from standins.broker import RabbitNode
        from standins.mongo import MongoServer
        from standins.stack import start_stack
        work = Path(tempfile.mkdtemp(prefix="replydesk-chaos-"))
        work.chmod(0o755)      # the broker node runs as the rabbitmq user
        from standins import reaper
        reaper.start(work)     # however this process ends, its broker node and database go too
        self.broker = RabbitNode(work / "rabbit")
        self.mongo = MongoServer(storage=work / "mongo")
        self.stack = None
        self.handle = None
        import ray
        try:
            self.broker.start()
            self.mongo.start()
            os.environ["MONGODB_URI"] = self.mongo.uri
            os.environ["RABBITMQ_URL"] = self.broker.url
            ns = "chaos" + uuid.uuid4().hex[:6]
            self.stack = start_stack(ns, theme=args.theme)
            if args.theme == "phoenix":   # a brisker render than the default 300 ms: the run's
                self.stack.site.faults(render_delay_ms=100)   # length is the flow's, not the page's
            os.environ.update(self.stack.env)
            log(f"stand-ins up; broker {self.broker.node} on {self.broker.port}, mongo on {self.mongo.port}")
            from contracts import settings
            from supervisor import runner
            config = settings.load()
            self.config = config
            app = config.app
            self.account = app.accounts[0]
            self.account.poll_interval_s = 0.3
            self.account.navigations_per_minute = 6000
            self.account.sends_per_minute = 6000
            app.review.port = 0
            app.sheets.linger_s = 0.3
            app.supervisor.heartbeat_s = 0.5
            app.supervisor.restart.max_restarts = 50
            app.supervisor.restart.within_s = 60
            app.supervisor.restart.backoff_initial_s = 0.2
            app.supervisor.restart.backoff_max_s = 2
            app.supervisor.reconcile.interval_s = 10
            app.supervisor.reconcile.grace_s = 30
            runner.connect(None, ns)
            self.handle = runner.start(config)
            desk_url = lambda: self._desk_url()  # noqa: E731
            self.reviewer = Reviewer(desk_url, self.stack.env["REVIEW_TOKEN"])
            self.reviewer.start()
            self.injector = Injector(self.stack.site, args.messages, args.conversations, args.rate,
                                     numeric=args.theme == "phoenix")
            self.injector.start()
            t_flow = time.monotonic()
            faults = SMOKE_FAULTS if args.smoke else FAULTS
            # faults spread over the flow; the short run's four come one after another (its flow
            # of 12 s is over before the probes of the first faults have their replies anyway)
            gap = 1.0 if args.smoke else max(1.0, (args.messages / args.rate) / (len(faults) + 1))
            for name in faults:
                time.sleep(gap)
                log(f"fault {name}")
                t0 = time.monotonic()
                try:
                    self.fault(name)
                except Exception as exc:
                    log(f"fault {name} could not be injected: {type(exc).__name__}: {exc}")
                took = self.probe(name, t0)
                log(f"  recovered in {took:.1f}s" if took is not None else "  NOT recovered")
                self.recovery.append({"fault": name, "recovery_s": None if took is None else round(took, 2)})
            self.injector.join()
            t_injected = time.monotonic()
            log(f"{self.injector.injected} messages injected; waiting for every conversation to settle")
            settled = self._settle(args.settle_timeout_s)
            table = self.measure()
            table.update(settled=settled, duration_s=round(time.monotonic() - t_start, 1),
                         flow_s=round(t_injected - t_flow, 1), recovery=self.recovery,
                         reviewer={"approved": len(self.reviewer.approved),
                                   "conflicts_409": self.reviewer.conflicts,
                                   "errors": self.reviewer.errors})
            return table
        finally:
            if getattr(self, "reviewer", None):
                self.reviewer.stop.set()
            if self.handle is not None:
                try:
                    from supervisor import runner
                    runner.stop(self.handle)
                except Exception as exc:
                    log(f"stopping the supervisor: {type(exc).__name__}: {exc}")
            if ray.is_initialized():
                ray.shutdown()
            if self.stack is not None:
                self.stack.close()
            self.mongo.close()
            self.broker.close()
            import shutil
            shutil.rmtree(work, ignore_errors=True)

    def _desk_url(self) -> str | None:
        import ray

        from contracts import names
        try:
            st = ray.get(self.handle.status.remote(), timeout=5)
        except Exception:
            return None
        desk = next((c for c in st["children"] if c["name"] == names.REVIEW), None)
        return desk and desk["state"] == "running" and desk["info"].get("url")

    def _settle(self, timeout: float) -> bool:
        """Every conversation answered at the site and every row in the sheet (or timeout)."""
        site = self.stack.site.url

        def done() -> bool:
            for conv in sorted(self.injector.conversations):
                msgs = _site_messages(site, conv)
                if msgs and msgs[-1]["direction"] == "in":
                    return False
            return not self._sheet_check()["missing"]
        try:
            wait_until(done, timeout, "every conversation answered and logged", interval=0.5)
            time.sleep(3)      # late duplicates have their chance to show
            return True
        except TimeoutError as exc:
            log(str(exc))
            return False

    def _sheet_check(self) -> dict[str, int]:
        from actors.sheets.rows import FIELDS
        rows = self.stack.sheets.rows()[1:]
        col = {f: i for i, f in enumerate(FIELDS)}
        ids = Counter(r[0] for r in rows if r)
        dup = sum(c - 1 for c in ids.values() if c > 1)

        def field(r, f):
            return r[col[f]] if len(r) > col[f] else ""
        incoming = Counter((field(r, "conversation"), field(r, "text")) for r in rows
                           if field(r, "kind") == "message" and field(r, "status") == "received")
        replies = Counter((field(r, "conversation"), field(r, "text")) for r in rows
                          if field(r, "kind") == "reply")
        missing = 0
        for conv in sorted(self.injector.conversations):
            for m in _site_messages(self.stack.site.url, conv):
                if m["direction"] == "in":
                    missing += incoming[(conv, m["text"])] == 0
                else:
                    missing += replies[(conv, m["text"])] == 0
        return {"missing": missing, "duplicated": dup}

    def measure(self) -> dict[str, Any]:
        from actors.store import Store
        store = Store.from_config(self.config)
        site = self.stack.site.url
        injected = stored = lost = duplicated = unanswered = sends_dup = 0
        shown: dict[str, set[str]] = {}
        pairs: list[dict[str, Any]] = []     # two replies in a row at the site
        for conv in sorted(self.injector.conversations):
            msgs = _site_messages(site, conv)
            ins = [m for m in msgs if m["direction"] == "in"]
            injected += len(ins)
            # by the site's id; a site that shows none (phoenix): by the text (each is unique)
            key, field = ("site_message_id", "id") if self.args.theme != "phoenix" else ("text", "text")
            docs = list(store.messages.coll.find({"conversation_id": conv, "direction": "in"}, {key: 1}))
            by_site = Counter(d.get(key) for d in docs)
            stored += sum(1 for m in ins if by_site[m[field]])
            lost += sum(1 for m in ins if not by_site[m[field]])
            duplicated += sum(c - 1 for c in by_site.values() if c > 1)
            unanswered += bool(msgs) and msgs[-1]["direction"] == "in"
            for a, b in zip(msgs, msgs[1:]):
                if a["direction"] == b["direction"] == "out":
                    kind, detail = _second_reply(store, conv, a, b)
                    pairs.append({"conversation": conv, "kind": kind, **detail})
            outs = Counter(m["text"] for m in msgs if m["direction"] == "out")
            sends_dup += sum(c - 1 for c in outs.values() if c > 1)
            shown[conv] = set(outs)
        sends_lost = 0
        for did, d in self.reviewer.approved.items():
            doc = store.drafts.get(did) or {}
            if doc.get("text") in shown.get(d.get("conversation_id"), set()):
                continue
            if doc.get("status") != "superseded":
                sends_lost += 1
        twice = sum(p["kind"] == "twice" for p in pairs)
        for p in pairs:
            log(f"two replies in a row ({p['kind']}): {p}")
        sheet = self._sheet_check()
        dead = Counter(d.get("reason", "?")[:80] for d in store.db["dead_letters"].find({}, {"reason": 1}))
        return {"messages_injected": injected, "messages_stored": stored, "messages_lost": lost,
                "messages_duplicated": duplicated, "conversations": len(shown), "unanswered": unanswered,
                "answered_twice": twice, "replied_after_race": len(pairs) - twice,
                "replies_in_a_row": pairs, "sheet_rows_missing": sheet["missing"],
                "sheet_rows_duplicated": sheet["duplicated"], "sends_shown": sum(
                    len(v) for v in shown.values()), "sends_lost": sends_lost,
                "sends_duplicated": sends_dup, "dead_letters": dict(dead)}


def print_table(t: dict[str, Any]) -> None:
    rows = [("messages injected / stored", f"{t['messages_injected']} / {t['messages_stored']}"),
            ("messages lost / duplicated", f"{t['messages_lost']} / {t['messages_duplicated']}"),
            ("conversations / with an unanswered incoming message", f"{t['conversations']} / {t['unanswered']}"),
            ("contacts answered twice for the same messages", t["answered_twice"]),
            ("two replies answering different messages (a message came during the click)",
             t["replied_after_race"]),
            ("sheet rows missing / duplicated", f"{t['sheet_rows_missing']} / {t['sheet_rows_duplicated']}"),
            ("sends shown / lost / duplicated", f"{t['sends_shown']} / {t['sends_lost']} / {t['sends_duplicated']}"),
            ("dead letters by reason", ", ".join(f"{r}: {n}" for r, n in t["dead_letters"].items()) or "none"),
            ("reviewer approved / 409 / errors", f"{t['reviewer']['approved']} / "
             f"{t['reviewer']['conflicts_409']} / {t['reviewer']['errors']}"),
            ("settled / duration / message flow", f"{t['settled']} / {t['duration_s']}s / {t['flow_s']}s")]
    rows += [(f"recovery after {r['fault']}", "NOT recovered" if r["recovery_s"] is None else f"{r['recovery_s']}s")
             for r in t["recovery"]]
    w = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{w}}  {v}" for k, v in rows), flush=True)


def failures(t: dict[str, Any]) -> list[str]:
    bad = [f"{c}={t[c]}" for c in ZERO_COLUMNS if t[c]]
    if not t["settled"]:
        bad.append("did not settle")
    bad += [f"{r['fault']} not recovered" for r in t["recovery"] if r["recovery_s"] is None]
    return bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="./run chaos", description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--conversations", type=int, default=0, help="default: messages / 8")
    p.add_argument("--rate", type=float, default=1.2,
                   help="messages injected per second (one browser session on 2 cores serves about "
                        "1.5, so recovery times measure recovery, not a growing backlog)")
    p.add_argument("--smoke", action="store_true", help="the short variant: 100 messages, a few faults")
    p.add_argument("--fault-window-s", type=float, default=8.0)
    p.add_argument("--recovery-timeout-s", type=float, default=120.0)
    p.add_argument("--settle-timeout-s", type=float, default=240.0)
    p.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    p.add_argument("--theme", choices=("classic", "phoenix"), default="classic",
                   help="the chat site's markup: classic (the chat-site stand-in) or phoenix (the "
                        "MeetMe-shaped single-page app, read by the shipped conf/sites/meetme.yaml)")
    args = p.parse_args(argv)
    if args.smoke and args.messages == 1000:
        args.messages, args.rate = 100, 8.0
    args.conversations = args.conversations or max(4, args.messages // 8)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    table = Chaos(args).run()
    print_table(table)
    bad = failures(table)
    if args.json:
        print("RESULT " + json.dumps(table), flush=True)
    if bad:
        print("chaos: FAILED: " + ", ".join(bad), flush=True)
        return 1
    print("chaos: every lost/duplicated/unanswered/answered-twice column is 0", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
