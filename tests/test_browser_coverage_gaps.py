"""The shared-browser layout (one Chromium per node, sessions attach over CDP), which only the
browser benchmark used before `./run coverage` showed actors/browser/host.py unmeasured."""
from __future__ import annotations

import ray

from actors.store import Store
from supervisor import runner
from tests.helpers import wait_for
from tests.raycli import alive


def test_shared_browser_layout_extracts_and_supervisor_stops_the_host(start_pipeline, chat_site):
    site_id = chat_site.inject("c-1", "Ann", "Hello from the shared browser layout")
    cfg, handle = start_pipeline(app={"browser": {"layout": "shared_browser"}})
    store = Store.from_config(cfg)
    wait_for(lambda: store.messages.coll.find_one({"site_message_id": site_id}), timeout=90,
             what="the message, extracted through the shared Chromium")

    node = ray.get_runtime_context().get_node_id()[:12]
    host = ray.get_actor(f"browser-host:{node}", namespace=cfg.settings.namespace)
    chromium = ray.get(host.pid.remote())
    assert alive(chromium)
    assert ray.get(host.cdp_endpoint.remote()).startswith("http://127.0.0.1:")

    # the host is a child of the supervisor like any other
    def host_child():
        st = ray.get(handle.status.remote())
        return next((c for c in st["children"] if c["kind"] == "host"), None)
    first = host_child()
    assert first["name"] == f"browser-host:{node}" and first["state"] == "running", first

    # killed with its Chromium: restarted by the supervisor, and the session opens again on the
    # new Chromium (its old CDP connection is gone) and reads what arrived meanwhile
    ray.kill(host, no_restart=True)
    wait_for(lambda: not alive(chromium), timeout=30, what="the killed host's Chromium exited")
    later = chat_site.inject("c-1", "Ann", "Written while the shared browser was down")
    wait_for(lambda: (c := host_child()) and c["state"] == "running" and c["restarts"] == 1,
             timeout=60, what="the host restarted by the supervisor")
    wait_for(lambda: store.messages.coll.find_one({"site_message_id": later}), timeout=90,
             what="the message, extracted through the new shared Chromium")
    host = ray.get_actor(f"browser-host:{node}", namespace=cfg.settings.namespace)
    chromium = ray.get(host.pid.remote())

    runner.stop(handle)                          # the supervisor's shutdown stops the host too
    wait_for(lambda: not alive(chromium), timeout=30, what="the shared Chromium exited")
