"""The hosted layout (`browser.layout: hosted`): one process per node runs every account's session
on one Playwright driver and one Chromium; each account keeps its own named actor, a thin proxy.
Through the supervisor, against the real stand-in site (a live spec: pushed messages are read
without a reload), with the host killed while messages keep arriving."""
from __future__ import annotations

from pathlib import Path

import ray
import yaml

from actors.store import Store
from contracts import names
from contracts.settings import ROOT
from supervisor import runner
from tests.helpers import wait_for
from tests.raycli import alive
from actors.browser.procs import descendants

ACCOUNTS = [f"hosted-{i}" for i in range(3)]


def _proxies() -> list[int]:
    """The pids of the HostedSession actors' worker processes (Ray titles them by class)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::HostedSession"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_hosted_layout_runs_every_account_in_one_host_and_a_host_crash_loses_nothing(
        start_pipeline, chat_site):
    spec = {**yaml.safe_load((ROOT / "standins" / "sites" / "classic.yaml").read_text()), "live": True}
    first = chat_site.inject("c-1", "Ann", "Hello from the hosted layout")
    cfg, handle = start_pipeline(app={
        "browser": {"layout": "hosted"},
        "accounts": [{"id": a, "site": "classic", "poll_interval_s": 0.3, "safety_poll_s": 600,
                      "navigations_per_minute": 600, "sends_per_minute": 60} for a in ACCOUNTS]},
        sites={"classic": spec})
    ns = cfg.settings.namespace
    store = Store.from_config(cfg)

    def stored_by(site_id: str) -> list[str]:
        return sorted(d["account_id"] for d in store.messages.coll.find({"site_message_id": site_id}))

    wait_for(lambda: stored_by(first) == ACCOUNTS, timeout=120, what="the message, read by every account")

    node = ray.get_runtime_context().get_node_id()
    host = ray.get_actor(names.browser_host(node), namespace=ns)
    info = ray.get(host.ping.remote())
    assert info["sessions"] == len(ACCOUNTS) and alive(info["chromium"]), info
    host_pid = info["pid"]
    # each account is still its own actor (what the dashboard shows), and a thin one: no
    # Playwright driver or browser of its own, everything runs under the host
    proxies = _proxies()
    assert len(proxies) == len(ACCOUNTS) and host_pid not in proxies, proxies
    for account in ACCOUNTS:
        assert ray.get_actor(names.browser("classic", account), namespace=ns)
    assert all(descendants(p) == [] for p in proxies), {p: descendants(p) for p in proxies}
    assert info["chromium"] in descendants(host_pid)

    # a live site: a message pushed into the open inbox page is read without a reload
    # (every account loaded its inbox, read c-1 and went back to the inbox, which subscribed)
    wait_for(lambda: (st := chat_site.stats())["inbox_views"] >= 2 * len(ACCOUNTS)
             and st["live_streams"] >= st["inbox_views"], timeout=60, what="every open inbox subscribed")
    before = chat_site.stats()
    pushed = chat_site.inject("c-2", "Bea", "Pushed into the open pages")
    wait_for(lambda: stored_by(pushed) == ACCOUNTS, timeout=60, what="the pushed message, read by every account")
    after = chat_site.stats()
    # pushed: the safety reload is 600 s away, and the sessions were woken by their pages
    assert after["live_pushes"] > before["live_pushes"]

    # the host killed (its driver and Chromium go with it) while messages keep arriving: the
    # supervisor starts it again, every account attaches again and reads what came meanwhile
    def host_child():
        st = ray.get(handle.status.remote())
        return next(c for c in st["children"] if c["kind"] == "host")
    ray.kill(host, no_restart=True)
    wait_for(lambda: not alive(info["chromium"]), timeout=30, what="the killed host's Chromium exited")
    during = [chat_site.inject("c-1", "Ann", f"Written while the host was down ({i})") for i in range(3)]
    wait_for(lambda: (c := host_child())["state"] == "running" and c["restarts"] >= 1, timeout=60,
             what="the host restarted by the supervisor")
    for site_id in during:
        wait_for(lambda: stored_by(site_id) == ACCOUNTS, timeout=120,
                 what="a message written during the outage, read by every account")
    new_host = ray.get_actor(names.browser_host(node), namespace=ns)
    wait_for(lambda: ray.get(new_host.ping.remote())["sessions"] == len(ACCOUNTS), timeout=30,
             what="every account attached to the new host")
    # nothing twice: one stored copy per account of every message
    for site_id in (first, pushed, *during):
        assert stored_by(site_id) == ACCOUNTS
    # the accounts' own actors lived through it: their heartbeats kept answering while they
    # attached again (none was taken for hung and restarted, which would start its session twice)
    beats = {c["name"]: c["heartbeats"] for c in ray.get(handle.status.remote())["children"]
             if c["kind"] == "browser"}
    wait_for(lambda: all(c["heartbeats"] > beats[c["name"]]
                         for c in ray.get(handle.status.remote())["children"] if c["kind"] == "browser"),
             timeout=30, what="every account's heartbeat after the host came back")
    browsers = [c for c in ray.get(handle.status.remote())["children"] if c["kind"] == "browser"]
    assert [(c["restarts"], c["state"]) for c in browsers] == [(0, "running")] * len(ACCOUNTS), browsers

    chromium = ray.get(new_host.ping.remote())["chromium"]
    runner.stop(handle)                          # the supervisor's shutdown stops the host too
    wait_for(lambda: not alive(chromium), timeout=30, what="the hosted Chromium exited")
