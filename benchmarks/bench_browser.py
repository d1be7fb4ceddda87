"""Browser layouts compared: own Chromium per session vs one shared Chromium per node (each
session its own context over CDP). For N sessions: PSS per session (actor process, Playwright
driver, Chromium processes -- the shared browser divided by N), time from actor creation to the
first extracted message, and CPU used while polling. Then reading compared, polled vs live (the
site pushes into the open inbox page, `live: true`): PSS, idle CPU per session (no messages),
CPU per message, and new message on the page -> stored, p50/p99, per session.

    .venv/bin/python benchmarks/bench_browser.py [--quick | --smoke] [--poll-seconds 6]

`--smoke` (the test suite runs it): N = 1 in both layouts, 0.5 s of polling, on the caller's Ray
instance and MONGODB_URI's server when there are; checks every figure is sane.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ray  # noqa: E402
import yaml  # noqa: E402

from benchmarks.common import check, mongo_uri, ray_instance  # noqa: E402
from contracts import settings  # noqa: E402
from standins.chatsite import ChatSiteAdmin, make_app  # noqa: E402
from standins.serve import ServedApp  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            kids.setdefault(ppid, []).append(int(p.name))
    return kids


def tree(pid: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid: int) -> int:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])
    except OSError:
        return 0


def start_sessions(cfg, n: int) -> list:
    """N browser-session actors, as the supervisor names and places them."""
    from actors.browser.session import BrowserSession
    ns = os.environ["REPLYDESK_NAMESPACE"]
    return [BrowserSession.options(name=f"browser:meetme:bench-{i}", namespace=ns,
                                   resources={"browser": 0.01}, max_restarts=0,
                                   max_task_retries=0).remote(cfg, f"bench-{i}") for i in range(n)]


def processes(actors: list, extra_pids: list[int] = ()) -> list[int]:
    """Every process of these actors (and of `extra_pids`): the actor, its driver, its browser."""
    pids = ray.get([a.__ray_call__.remote(lambda self: os.getpid()) for a in actors])
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
    base["accounts"] = [{"id": f"bench-{i}", "navigations_per_minute": 10000,
                         "sends_per_minute": 100, "max_pages": 3} for i in range(n)]
    (conf_dir / "replydesk.yaml").write_text(yaml.safe_dump(base))
    spec = yaml.safe_load((ROOT / "conf/sites/meetme.yaml").read_text())
    (conf_dir / "sites" / "meetme.yaml").write_text(yaml.safe_dump({**spec, "live": live}))
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
    host_pids = []
    if layout == "shared_browser":
        node = ray.get_runtime_context().get_node_id()[:12]
        host = ray.get_actor(f"browser-host:{node}", namespace=ns)   # the host lives in the config's
        host_pids = [ray.get(host.__ray_call__.remote(lambda self: os.getpid()))]
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
    if layout == "shared_browser":
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


def run_live(live: bool, n: int, site: ChatSiteAdmin, uri: str, idle_s: float, messages: int,
             gap_s: float) -> dict:
    """One layout (own browser) read two ways: polled every `poll_interval_s` (the shipped 5 s),
    or live (the site pushes into the open inbox; safety reload 60 s). Driven as the supervisor
    drives them: a polled session's next pass `poll_interval_s` after the last, a live one's at
    once (it waits for its page). Idle CPU with no messages, then `messages` messages `gap_s`
    apart: new message on the page -> stored, for every session, and the CPU they cost."""
    import asyncio

    from actors.store import Store
    site.reset()
    site.add_account(os.environ["MEETME_USERNAME"], os.environ["MEETME_PASSWORD"])
    site.inject("c0", "Sender 0", "hello")
    mode = "live" if live else "polled"
    ns = os.environ["REPLYDESK_NAMESPACE"]
    cfg = make_config(site.url, uri, "own_browser", n, f"{ns}_{mode}_{n}", live=live)
    store = Store.from_config(cfg)
    interval = cfg.app.accounts[0].poll_interval_s
    actors = start_sessions(cfg, n)
    ray.get([a.poll.remote() for a in actors], timeout=600)      # started, first message read
    procs = processes(actors)
    pss = sum(pss_kib(p) for p in procs)

    async def measure() -> tuple[float, float, list[float]]:
        stop = asyncio.Event()

        async def drive(a) -> None:
            while not stop.is_set():
                r = await a.poll.remote()
                if not r.get("live"):
                    try:
                        await asyncio.wait_for(stop.wait(), interval)
                    except asyncio.TimeoutError:
                        pass
        drivers = [asyncio.ensure_future(drive(a)) for a in actors]
        await asyncio.sleep(min(2.0, idle_s))                        # settle
        c0, w0 = cpu_s(procs), time.monotonic()
        await asyncio.sleep(idle_s)
        idle = (cpu_s(procs) - c0) / (time.monotonic() - w0)
        c1, w1 = cpu_s(procs), time.monotonic()
        latencies: list[float] = []
        for k in range(messages):
            marker = f"probe {uuid.uuid4().hex[:8]}"
            t0 = time.monotonic()
            site.inject(f"c{1 + k % 3}", "Sender", marker)
            seen: set[str] = set()
            while len(seen) < n and time.monotonic() - t0 < 120:
                for d in store.messages.coll.find({"text": marker}, {"account_id": 1}):
                    if d["account_id"] not in seen:
                        seen.add(d["account_id"])
                        latencies.append(time.monotonic() - t0)
                await asyncio.sleep(0.02)
            assert len(seen) == n, f"{mode}: {n - len(seen)} session(s) never stored {marker!r}"
            await asyncio.sleep(max(0.0, gap_s - (time.monotonic() - t0)))
        busy = cpu_s(procs) - c1
        per_message = (busy - idle * (time.monotonic() - w1)) / max(messages * n, 1)
        stop.set()
        for a in actors:
            a.wake.remote()
        await asyncio.gather(*drivers)
        return idle, per_message, latencies

    idle, per_message, latencies = asyncio.run(measure())
    stop_sessions(actors, cfg)
    return {"mode": mode, "n": n, "pss_mib": pss / 1024 / n, "idle_pct_per_session": 100 * idle / n,
            "cpu_s_per_message": max(per_message, 0.0), "p50_s": percentile(latencies, 0.5),
            "p99_s": percentile(latencies, 0.99), "interval_s": interval}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="N = 1, 5 only")
    ap.add_argument("--smoke", action="store_true", help="N = 1 only, 0.5 s of polling, figures checked")
    ap.add_argument("--poll-seconds", type=float, default=None, help="polling time per case (6)")
    ap.add_argument("--part", choices=("layouts", "live", "all"), default="all",
                    help="own vs shared browser, live vs polled reading, or both")
    a = ap.parse_args(argv)
    sizes = [1] if a.smoke else [1, 5] if a.quick else [1, 5, 10, 20]
    live_sizes = [1] if a.smoke else [1, 5] if a.quick else [1, 10, 25]
    idle_s, messages, gap_s = (0.5, 1, 0.5) if a.smoke else (10.0, 10, 3.0)
    poll_s = a.poll_seconds or (0.5 if a.smoke else 6.0)
    if a.part == "live":
        sizes = []
    if a.part == "layouts":
        live_sizes = []
    tmp = tempfile.TemporaryDirectory(prefix="bench-browser-")
    os.environ["BENCH_TMP"] = tmp.name
    os.environ.update({"RABBITMQ_URL": os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
                       "GOOGLE_SHEET_ID": "bench", "SHEETS_API_URL": "http://127.0.0.1:9/",
                       "MEETME_USERNAME": "owner@example.com", "MEETME_PASSWORD": "bench-password",
                       "AI_API_KEY": "sk-bench", "AI_API_URL": "http://127.0.0.1:9/",
                       "REVIEW_TOKEN": "bench-review-token-123456",
                       "REPLYDESK_NAMESPACE": "bench" + uuid.uuid4().hex[:8]})
    os.environ.pop("REPLYDESK_TRACE_FILE", None)
    served = ServedApp(make_app()).start()
    rows: list[dict] = []
    lives: list[dict] = []
    try:
        with mongo_uri() as uri, ray_instance(resources={"browser": 64}, namespace="bench-browser"):
            for n in sizes:
                for layout in ("own_browser", "shared_browser"):
                    r = run(layout, n, ChatSiteAdmin(served.url), uri, poll_s)
                    rows.append(r)
                    print(f"  {layout:15s} N={n:2d} done", flush=True)
            for n in live_sizes:
                for live in (False, True):
                    lives.append(run_live(live, n, ChatSiteAdmin(served.url), uri, idle_s,
                                          messages, gap_s))
                    print(f"  {lives[-1]['mode']:15s} N={n:2d} done", flush=True)
    finally:
        served.stop()
        tmp.cleanup()
    if rows:
        print(f"\n{'layout':15s} {'N':>3s} {'PSS MiB/session':>16s} {'first msg s':>12s} "
              f"{'median s':>9s} {'all s':>7s} {'CPU % total':>12s} {'CPU %/session':>14s} {'rounds':>7s}")
        for r in rows:
            print(f"{r['layout']:15s} {r['n']:3d} {r['pss_mib']:16.1f} {r['first_s']:12.2f} "
                  f"{r['median_first_s']:9.2f} {r['all_first_s']:7.2f} {r['cpu_pct']:12.1f} "
                  f"{r['cpu_pct_per_session']:14.1f} {r['poll_rounds']:7d}")
        print("\nshared vs own (ratio, <1 = shared better):")
        for n in sizes:
            own = next(r for r in rows if r["n"] == n and r["layout"] == "own_browser")
            sh = next(r for r in rows if r["n"] == n and r["layout"] == "shared_browser")
            print(f"  N={n:2d}: PSS {sh['pss_mib'] / own['pss_mib']:.2f}  "
                  f"all-first {sh['all_first_s'] / own['all_first_s']:.2f}  "
                  f"CPU/round {(sh['cpu_pct'] / max(sh['poll_rounds'], 1)) / (own['cpu_pct'] / max(own['poll_rounds'], 1)):.2f}")
    if lives:
        print(f"\nreading: polled every poll_interval_s (shipped {lives[0]['interval_s']:g} s) vs live "
              f"(pushed into the open inbox; safety reload 60 s); own browser per session")
        print(f"{'mode':8s} {'N':>3s} {'PSS MiB/session':>16s} {'idle CPU %/session':>19s} "
              f"{'CPU ms/message':>15s} {'page->stored p50 s':>19s} {'p99 s':>7s}")
        for r in lives:
            print(f"{r['mode']:8s} {r['n']:3d} {r['pss_mib']:16.1f} {r['idle_pct_per_session']:19.3f} "
                  f"{1000 * r['cpu_s_per_message']:15.1f} {r['p50_s']:19.2f} {r['p99_s']:7.2f}")
        for r in lives:
            if r["mode"] == "live":
                print(f"goal N={r['n']}: idle CPU <= 0.2 % of a core per session: "
                      f"{r['idle_pct_per_session']:.3f} % {'met' if r['idle_pct_per_session'] <= 0.2 else 'NOT MET'}")
    if a.smoke:
        figures, bounds = {}, {}
        for r in lives:
            key = f"{r['mode']} N={r['n']}"
            figures.update({f"{key} PSS MiB": r["pss_mib"], f"{key} p50 s": r["p50_s"],
                            f"{key} idle CPU %": r["idle_pct_per_session"]})
            bounds.update({f"{key} PSS MiB": (10, 16_384), f"{key} p50 s": (1e-3, 120),
                           f"{key} idle CPU %": (0, 100 * (os.cpu_count() or 1))})
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
