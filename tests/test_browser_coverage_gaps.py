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

    runner.stop(handle)                          # the supervisor's shutdown stops the host too
    wait_for(lambda: not alive(chromium), timeout=30, what="the shared Chromium exited")
