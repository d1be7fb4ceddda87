"""Browser layouts and reading modes compared, in one run.

Part `layouts`: own Chromium per session vs hosted (one process per node runs every session, one
driver, one Chromium; each account a thin actor). For N sessions polled in a loop: PSS per session (actor processes,
drivers, Chromium processes; a host divided by N), time from actor creation to the first
extracted message, and CPU per polling round.

Part `density`: the whole pipeline under the supervisor, N accounts each on a chat site of its
own, read today's way (own browser, polled every poll_interval_s) and the new way (hosted, live:
the site pushes into the open inbox, safety reload every safety_poll_s). For N = 1, 10, 25, 50:
PSS per session with everything counted, idle CPU per session (no messages), CPU per message,
and new message on the page -> draft stored p50/p99 with the AI stand-in at a fixed latency,
one message per account per minute; the issue's goals printed as met / NOT MET.

    .venv/bin/python benchmarks/bench_browser.py [--quick | --smoke] [--part layouts|density|all]
        [--sizes 1,10,25,50] [--ai-ms 500] [--poll-seconds 6]

`--smoke` (the test suite runs it): N = 1, every layout 0.5 s of polling, the density part in
its live mode only (one message, one host crash), on the caller's Ray instance and MONGODB_URI's
server when there are; checks every figure is sane.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ray  # noqa: E402
import yaml  # noqa: E402

from actors.browser.procs import children, tree  # noqa: E402
from benchmarks.common import check, ray_instance  # noqa: E402
from contracts import names, settings  # noqa: E402
from standins.chatsite import ChatSiteAdmin, make_app  # noqa: E402
from standins.serve import ServedApp  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid: int, reaped: bool = False) -> int:
    """utime + stime of `pid`; with `reaped`, its reaped children's too (cutime + cstime)."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(x) for x in f[11:15 if reaped else 13])
    except OSError:
        return 0


def start_sessions(cfg, n: int) -> list:
    """N browser-session actors, as the supervisor names and places them (the hosted layout's
    are thin proxies of the node's session host, which the first of them starts)."""
    from actors.browser.hosted import HostedSession
    from actors.browser.session import BrowserSession
    cls = HostedSession if cfg.app.browser.layout == "hosted" else BrowserSession
    ns = os.environ["REPLYDESK_NAMESPACE"]
    return [cls.options(name=f"browser:classic:bench-{i}", namespace=ns,
                        resources={"browser": 0.01}, max_restarts=0,
                        max_task_retries=0).remote(cfg, f"bench-{i}") for i in range(n)]


def host_of(layout: str):
    """The node's session host of the hosted layout (it lives in the config's namespace), or None."""
    if layout == "own_browser":
        return None
    node = ray.get_runtime_context().get_node_id()
    return ray.get_actor(names.browser_host(node), namespace=os.environ["REPLYDESK_NAMESPACE"])


def pids_of(actors: list) -> list[int]:
    """The process ids of these actors."""
    return ray.get([a.__ray_call__.remote(lambda self: os.getpid()) for a in actors])


def processes(actors: list, extra_pids: list[int] = ()) -> list[int]:
    """Every process of these actors (and of `extra_pids`): the actor, its driver, its browser."""
    pids = pids_of(actors)
    kids = children()
    return [p for pid in [*pids, *extra_pids] for p in tree(pid, kids)]


def cpu_s(procs: list[int]) -> float:
    return sum(cpu_ticks(p) for p in procs) / CLK


def stop_sessions(actors: list, cfg) -> None:
    from actors.store import Store
    ray.get([a.stop.remote() for a in actors])
    for a in actors:
        ray.kill(a)
    Store.from_config(cfg).db.client.drop_database(cfg.settings.mongodb_db)


def make_config(site_url: str, uri: str, layout: str, n: int, db: str, live: bool = False):
    conf_dir = Path(os.environ["BENCH_TMP"]) / f"conf-{layout}-{n}-{'live' if live else 'polled'}"
    (conf_dir / "sites").mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load((ROOT / "conf" / "replydesk.yaml").read_text())
    base["browser"]["layout"] = layout
    base["accounts"] = [{"id": f"bench-{i}", "site": "classic", "navigations_per_minute": 10000,
                         "sends_per_minute": 100, "max_pages": 3} for i in range(n)]
    (conf_dir / "replydesk.yaml").write_text(yaml.safe_dump(base))
    spec = yaml.safe_load((ROOT / "standins/sites/classic.yaml").read_text())
    (conf_dir / "sites" / "classic.yaml").write_text(yaml.safe_dump({**spec, "live": live}))
    os.environ.update({"MEETME_URL": site_url, "MONGODB_URI": uri, "MONGODB_DB": db})
    return settings.load(conf_dir / "replydesk.yaml")


def run(layout: str, n: int, site: ChatSiteAdmin, uri: str, poll_s: float) -> dict:
    site.reset()
    site.add_account(os.environ["MEETME_USERNAME"], os.environ["MEETME_PASSWORD"])
    for c in range(3):
        for i in range(5):
            site.inject(f"c{c}", f"Sender {c}", f"message {i} in conversation {c}")
    ns = os.environ["REPLYDESK_NAMESPACE"]
    cfg = make_config(site.url, uri, layout, n, f"{ns}_{layout}_{n}")
    t0 = time.monotonic()
    actors = start_sessions(cfg, n)
    firsts = []
    refs = {a.poll.remote(): i for i, a in enumerate(actors)}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1, timeout=300)
        for r in done:
            assert ray.get(r)["new"], "a session extracted nothing"
            firsts.append(time.monotonic() - t0)
    host = host_of(layout)
    host_pids = pids_of([host]) if host else []
    procs = processes(actors, host_pids)
    pss = sum(pss_kib(p) for p in procs)

    # CPU while polling: every session polls in a loop while messages keep arriving.
    c0 = cpu_s(procs)
    w0 = time.monotonic()
    k = 0
    while time.monotonic() - w0 < poll_s:
        site.inject(f"c{k % 3}", "Sender", f"live {k}")
        ray.get([a.poll.remote() for a in actors])
        k += 1
    wall = time.monotonic() - w0
    cpu = cpu_s(procs) - c0
    stop_sessions(actors, cfg)
    if host is not None:
        ray.get(host.stop.remote())
        ray.kill(host)
    firsts.sort()
    return {"layout": layout, "n": n, "pss_mib": pss / 1024 / n, "first_s": firsts[0],
            "median_first_s": firsts[len(firsts) // 2], "all_first_s": firsts[-1],
            "cpu_pct": 100 * cpu / wall, "cpu_pct_per_session": 100 * cpu / wall / n,
            "poll_rounds": k}


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


MODES = {"polled": ("own_browser", False), "live": ("hosted", True)}   # today's, and the new one


KINDS = ("actors", "host", "driver", "chromium")


def tree_cpu_s(roots: list[int], host_pid: int | None = None) -> dict[str, float]:
    """CPU seconds of these processes and of every descendant, alive or reaped (a renderer
    Chromium replaced is counted in its parent's cutime), by kind: the account actors, the
    host's own process, Playwright drivers, Chromium; and their "total"."""
    kids = children()
    out = dict.fromkeys(KINDS, 0.0)
    for pid in {p for r in roots for p in tree(r, kids)}:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        kind = ("host" if pid == host_pid else "actors" if pid in roots else
                "driver" if comm == "node" else "chromium")
        out[kind] += cpu_ticks(pid, reaped=True) / CLK
    out["total"] = sum(out.values())
    return out


def _rate(a: dict[str, float], b: dict[str, float], seconds: float) -> dict[str, float]:
    return {k: (b[k] - a[k]) / seconds for k in b}


def density_config(sites: list, uri: str, mode: str, n: int, db: str):
    """N accounts, each on a chat site of its own (its own inbox, as real accounts have), read
    as `mode` says; the rest is the shipped config."""
    layout, live = MODES[mode]
    conf_dir = Path(os.environ["BENCH_TMP"]) / f"density-{mode}-{n}"
    (conf_dir / "sites").mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load((ROOT / "conf" / "replydesk.yaml").read_text())
    base["browser"]["layout"] = layout
    base["accounts"] = [{"id": f"density-{i}", "site": f"meetme{i}"} for i in range(n)]
    base.setdefault("review", {})["port"] = 0
    (conf_dir / "replydesk.yaml").write_text(yaml.safe_dump(base))
    spec = yaml.safe_load((ROOT / "standins/sites/classic.yaml").read_text())
    for i, site in enumerate(sites[:n]):
        (conf_dir / "sites" / f"meetme{i}.yaml").write_text(
            yaml.safe_dump({**spec, "name": f"meetme{i}", "live": live, "url_env": f"MEETME{i}_URL"}))
        os.environ[f"MEETME{i}_URL"] = site.url
    os.environ.update({"MONGODB_URI": uri, "MONGODB_DB": db})
    return settings.load(conf_dir / "replydesk.yaml")


def run_density(mode: str, n: int, sites: list, uri: str, ai_latency_s: float, idle_s: float,
                window_s: float, min_messages: int) -> dict:
    """The whole pipeline under the supervisor with N accounts read `mode`'s way: PSS of every
    browser-side process per session, idle CPU per session, then messages at one per account per
    `window_s` (at least `min_messages`), each on one account's site: CPU per message and new
    message on the page -> its draft stored (the AI stand-in answers in `ai_latency_s`)."""
    from actors.store import Store
    from standins.stack import wait_for
    from supervisor import runner
    for site in sites[:n]:
        site.reset()
        site.add_account(os.environ["MEETME_USERNAME"], os.environ["MEETME_PASSWORD"])
        site.inject("c0", "Sender 0", "Hi! Do you like hiking?")
    ns = os.environ["REPLYDESK_NAMESPACE"]
    cfg = density_config(sites, uri, mode, n, f"{ns}_density_{mode}_{n}")
    store = Store.from_config(cfg)
    t0 = time.monotonic()
    handle = runner.start(cfg)
    try:
        wait_for(lambda: store.drafts.coll.count_documents({}) >= n, timeout=300 + 20 * n,
                 interval=0.2, what=f"{mode} N={n}: every account's first draft")
        started_s = time.monotonic() - t0
        actors = [ray.get_actor(names.browser(f"meetme{i}", f"density-{i}"), namespace=ns) for i in range(n)]
        host = host_of(cfg.app.browser.layout)
        roots = pids_of(actors + ([host] if host else []))
        host_pid = roots[-1] if host else None
        time.sleep(min(3.0, idle_s))                                  # settle
        kids = children()
        pss = sum(pss_kib(p) for p in {p for r in roots for p in tree(r, kids)})
        c0, w0 = tree_cpu_s(roots, host_pid), time.monotonic()
        time.sleep(idle_s)
        idle_by = _rate(c0, tree_cpu_s(roots, host_pid), time.monotonic() - w0)
        idle = idle_by["total"]

        count = max(n, min_messages)
        gap = window_s / count     # one per account per window, spread evenly over the accounts
        c1, w1 = tree_cpu_s(roots, host_pid)["total"], time.monotonic()
        latencies: list[float] = []
        split: list[tuple[float, float]] = []
        waiting: dict[str, float] = {}
        k = 0
        deadline = None
        last_look = 0.0
        while k < count or waiting:
            now = time.monotonic()
            if k < count and now >= w1 + k * gap:
                i = k % n
                marker = f"What music do you like? (probe {k} {uuid.uuid4().hex[:8]})"
                sites[i].inject(f"c{1 + (k // n) % 3}", "Sender", marker)
                waiting[marker] = time.time()
                k += 1
                if k == count:
                    deadline = time.monotonic() + 120
            if k >= count or now - last_look >= 0.5:
                latencies += drafted_since(store, waiting, split)
                last_look = now
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(0.02 if k < count else 0.25)
        wall = time.monotonic() - w1
        busy = tree_cpu_s(roots, host_pid)["total"] - c1
        per_message = (busy - idle * wall) / count
        drafted = len(latencies)
        crash = crash_recovery(host, sites[:n], store) if host is not None else {}
    finally:
        runner.stop(handle)
        store.db.client.drop_database(cfg.settings.mongodb_db)
    return {"mode": mode, "layout": cfg.app.browser.layout, "n": n, "pss_mib": pss / 1024 / n,
            "idle_pct_per_session": 100 * idle / n,
            "idle_by_kind": {k: 100 * v / n for k, v in idle_by.items() if k != "total"},
            "cpu_s_per_message": max(per_message, 0.0),
            "p50_s": percentile(latencies, 0.5) if latencies else float("nan"),
            "p99_s": percentile(latencies, 0.99) if latencies else float("nan"),
            "to_stored_p50_s": percentile([a for a, _ in split], 0.5) if split else float("nan"),
            "to_draft_p50_s": percentile([b for _, b in split], 0.5) if split else float("nan"),
            "messages": count, "drafted": drafted, "started_s": started_s,
            "interval_s": cfg.app.accounts[0].poll_interval_s, "ai_s": ai_latency_s,
            "safety_s": cfg.app.accounts[0].safety_poll_s, **crash}


def drafted_since(store, waiting: dict[str, float], split: list | None = None) -> list[float]:
    """Of the messages waiting (text -> when it was put on the page, wall clock), those whose
    draft is stored now: taken out of `waiting`, their page -> draft times returned, from the
    times the store wrote (the message's `seen_at`, the draft's `created_at`), not from when this
    loop looked. Two queries a look, whatever is waiting, so the looking loads the database little.
    `split` gets (page -> message stored, message stored -> draft stored) per message."""
    if not waiting:
        return []
    msgs = {m["_id"]: m for m in store.messages.coll.find({"text": {"$in": list(waiting)}},
                                                         {"_id": 1, "text": 1, "seen_at": 1})}
    if not msgs:
        return []
    done = []
    for d in store.drafts.coll.find({"last_message_id": {"$in": list(msgs)}},
                                    {"last_message_id": 1, "created_at": 1}):
        m = msgs.pop(d["last_message_id"], None)
        if m is None or m["text"] not in waiting:
            continue
        at = waiting.pop(m["text"])
        drafted = _epoch(d["created_at"])
        done.append(drafted - at)
        if split is not None:
            seen = _epoch(m["seen_at"])
            split.append((seen - at, drafted - seen))
    return done


def _epoch(value) -> float:
    """A stored time (a BSON datetime, or the ISO text a model stored) as epoch seconds."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def crash_recovery(host, sites: list, store) -> dict:
    """The host killed (its driver and Chromium with it), then a message on every account's site:
    how long until each is drafted (the supervisor restarts the host, every account attaches
    again and reads), and whether any was lost or stored twice."""
    ray.kill(host, no_restart=True)
    t0 = time.time()
    waiting = {}
    for i, site in enumerate(sites):
        marker = f"Are you free on Sunday? (after the crash {i} {uuid.uuid4().hex[:6]})"
        site.inject("c1", "Sender", marker)
        waiting[marker] = t0
    back: list[float] = []
    while waiting and time.time() - t0 < 300:
        back += drafted_since(store, waiting)
        time.sleep(0.25)
    dup = list(store.messages.coll.aggregate([
        {"$group": {"_id": {"a": "$account_id", "s": "$site_message_id"}, "n": {"$sum": 1}}},
        {"$match": {"n": {"$gt": 1}}}]))
    return {"crash_back_p50_s": percentile(back, 0.5) if back else float("nan"),
            "crash_back_max_s": max(back) if back else float("nan"),
            "crash_lost": len(waiting), "crash_duplicates": len(dup)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="N = 1, 5 only")
    ap.add_argument("--smoke", action="store_true", help="N = 1 only, 0.5 s of polling, figures checked")
    ap.add_argument("--poll-seconds", type=float, default=None, help="polling time per case (6)")
    ap.add_argument("--part", choices=("layouts", "density", "all"), default="all",
                    help="own vs hosted browser polled in a loop, or polled (today) vs "
                         "live+hosted through the whole pipeline, or both")
    ap.add_argument("--sizes", default=None, help="density sizes, e.g. 1,10,25,50")
    ap.add_argument("--ai-ms", type=float, default=500, help="the AI stand-in's fixed latency")
    ap.add_argument("--modes", default="polled,live", help="density modes (polled,live)")
    a = ap.parse_args(argv)
    sizes = [1] if a.smoke else [1, 5] if a.quick else [1, 5, 10, 20]
    dense = ([1] if a.smoke else [1, 5] if a.quick else
             [int(x) for x in (a.sizes or "1,10,25,50").split(",")])
    idle_s, window_s, min_messages = (0.5, 1.0, 1) if a.smoke else (20.0, 60.0, 10)
    poll_s = a.poll_seconds or (0.5 if a.smoke else 6.0)
    if a.part == "density":
        sizes = []
    if a.part == "layouts":
        dense = []
    from standins.stack import start_stack
    tmp = tempfile.TemporaryDirectory(prefix="bench-browser-")
    os.environ["BENCH_TMP"] = tmp.name
    os.environ.pop("REPLYDESK_TRACE_FILE", None)
    rows: list[dict] = []
    lives: list[dict] = []
    failed: list[tuple[str, int, str]] = []
    extra: list[ServedApp] = []
    stack = start_stack("bench" + uuid.uuid4().hex[:8])
    try:
        os.environ.update(stack.env)
        stack.ai.latency(a.ai_ms)
        # a chat site per account for the density part (each account its own inbox)
        extra = [ServedApp(make_app()).start() for _ in range(max(dense, default=1) - 1)]
        sites = [stack.site, *(ChatSiteAdmin(e.url) for e in extra)]
        uri = stack.env["MONGODB_URI"]
        with ray_instance(resources={"browser": 64}, namespace="bench-browser"):
            for n in sizes:
                for layout in ("own_browser", "hosted"):
                    r = run(layout, n, stack.site, uri, poll_s)
                    rows.append(r)
                    print(f"  {layout:15s} N={n:2d} done", flush=True)
            for n in dense:
                # smoke: the live mode only (the polled mode differs by config alone, and the
                # layouts part already ran the own browser)
                for mode in (["live"] if a.smoke else a.modes.split(",")):
                    try:
                        lives.append(run_density(mode, n, sites, uri, a.ai_ms / 1000, idle_s,
                                                 window_s, min_messages))
                    except Exception as exc:   # e.g. N sessions that never all start: a figure too
                        if a.smoke:
                            raise
                        print(f"  {mode:6s} N={n:2d} FAILED: {type(exc).__name__}: {exc}", flush=True)
                        failed.append((mode, n, f"{type(exc).__name__}: {str(exc)[:200]}"))
                        continue
                    r = lives[-1]
                    print(f"  {mode:6s} N={n:2d} done: {r['drafted']}/{r['messages']} drafted, "
                          f"p50 {r['p50_s']:.2f}s", flush=True)
    finally:
        for e in extra:
            e.stop()
        stack.close()
        tmp.cleanup()
    if rows:
        print(f"\n{'layout':15s} {'N':>3s} {'PSS MiB/session':>16s} {'first msg s':>12s} "
              f"{'median s':>9s} {'all s':>7s} {'CPU % total':>12s} {'CPU %/session':>14s} {'rounds':>7s}")
        for r in rows:
            print(f"{r['layout']:15s} {r['n']:3d} {r['pss_mib']:16.1f} {r['first_s']:12.2f} "
                  f"{r['median_first_s']:9.2f} {r['all_first_s']:7.2f} {r['cpu_pct']:12.1f} "
                  f"{r['cpu_pct_per_session']:14.1f} {r['poll_rounds']:7d}")
        print("\nvs own browser (ratio, <1 = better):")
        for n in sizes:
            own = next(r for r in rows if r["n"] == n and r["layout"] == "own_browser")
            for other in ("hosted",):
                sh = next(r for r in rows if r["n"] == n and r["layout"] == other)
                print(f"  {other:15s} N={n:2d}: PSS {sh['pss_mib'] / own['pss_mib']:.2f}  "
                      f"all-first {sh['all_first_s'] / own['all_first_s']:.2f}  "
                      f"CPU/round {(sh['cpu_pct'] / max(sh['poll_rounds'], 1)) / (own['cpu_pct'] / max(own['poll_rounds'], 1)):.2f}")
    if lives:
        r0 = lives[0]
        print(f"\ndensity, through the whole pipeline: polled (own browser, every {r0['interval_s']:g} s) vs "
              f"live (hosted, pushed into the open inbox; safety reload {r0['safety_s']:g} s); "
              f"AI stand-in latency {r0['ai_s']:g} s; one message per account per {window_s:g} s")
        print(f"{'mode':7s} {'layout':12s} {'N':>3s} {'PSS MiB/session':>16s} {'idle CPU %/session':>19s} "
              f"{'CPU ms/message':>15s} {'page->draft p50 s':>18s} {'p99 s':>7s} {'drafted':>9s} {'start s':>8s} "
              f"{'p50 page->stored':>17s} {'stored->draft':>14s}")
        for r in lives:
            print(f"{r['mode']:7s} {r['layout']:12s} {r['n']:3d} {r['pss_mib']:16.1f} "
                  f"{r['idle_pct_per_session']:19.3f} {1000 * r['cpu_s_per_message']:15.1f} "
                  f"{r['p50_s']:18.2f} {r['p99_s']:7.2f} {r['drafted']:4d}/{r['messages']:<4d} {r['started_s']:8.1f} "
                  f"{r['to_stored_p50_s']:17.2f} {r['to_draft_p50_s']:14.2f}")
        print("idle CPU % of a core per session, by process: " + "; ".join(
            f"{r['mode']} N={r['n']}: " + ", ".join(f"{k} {v:.3f}" for k, v in r["idle_by_kind"].items())
            for r in lives))
        for mode, n, why in failed:
            print(f"{mode:7s} N={n}: not measured: {why}")
        for r in lives:
            if r["mode"] != "live":
                continue
            L = r["ai_s"]
            goals = [(f"every message drafted ({r['drafted']}/{r['messages']})", r["drafted"] == r["messages"]),
                     (f"PSS <= 150 MiB/session: {r['pss_mib']:.1f}", r["pss_mib"] <= 150),
                     (f"idle CPU <= 0.2 %/session: {r['idle_pct_per_session']:.3f}", r["idle_pct_per_session"] <= 0.2),
                     (f"p50 <= AI + 0.3 s: {r['p50_s']:.2f} <= {L + 0.3:.2f}", r["p50_s"] <= L + 0.3),
                     (f"p99 <= AI + 1.5 s: {r['p99_s']:.2f} <= {L + 1.5:.2f}", r["p99_s"] <= L + 1.5)]
            for what, ok in goals:
                print(f"goal live N={r['n']}: {what}: {'met' if ok else 'NOT MET'}")
            if "crash_back_max_s" in r:
                print(f"host crash, N={r['n']}: every account's next message drafted after "
                      f"p50 {r['crash_back_p50_s']:.1f} s, max {r['crash_back_max_s']:.1f} s; "
                      f"lost {r['crash_lost']}, stored twice {r['crash_duplicates']}")
    if a.smoke:
        figures, bounds = {}, {}
        for r in lives:
            key = f"{r['mode']} N={r['n']}"
            figures.update({f"{key} PSS MiB": r["pss_mib"], f"{key} p50 s": r["p50_s"],
                            f"{key} idle CPU %": r["idle_pct_per_session"],
                            f"{key} drafted": r["drafted"] / r["messages"],
                            **({f"{key} crash back s": r["crash_back_max_s"],
                                f"{key} crash lost+dup": r["crash_lost"] + r["crash_duplicates"]}
                               if "crash_back_max_s" in r else {})})
            bounds.update({f"{key} PSS MiB": (10, 16_384), f"{key} p50 s": (1e-3, 120),
                           f"{key} idle CPU %": (0, 100 * (os.cpu_count() or 1)),
                           f"{key} drafted": (1, 1),
                           **({f"{key} crash back s": (1e-3, 300), f"{key} crash lost+dup": (0, 0)}
                              if "crash_back_max_s" in r else {})})
        for r in rows:
            key = f"{r['layout']} N={r['n']}"
            figures.update({f"{key} PSS MiB": r["pss_mib"], f"{key} first s": r["first_s"],
                            f"{key} CPU %": r["cpu_pct"], f"{key} rounds": r["poll_rounds"]})
            bounds.update({f"{key} PSS MiB": (10, 16_384), f"{key} first s": (1e-3, 300),
                           f"{key} CPU %": (1e-3, 100 * (os.cpu_count() or 1)), f"{key} rounds": (1, 1e6)})
        check("bench_browser", figures, bounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
