"""Which children a config asks for, and how each is started (names, resources, restart type)."""
from __future__ import annotations

from typing import Any

import ray

from contracts.settings import Config
from supervisor.children import ChildSpec
from supervisor.policy import RestartType


def _remote(cls: Any) -> Any:
    return cls if hasattr(cls, "options") else ray.remote(cls)


def child_specs(config: Config) -> list[ChildSpec]:
    from actors.ai.worker import AIWorker
    from actors.browser.session import BrowserSession
    from actors.sheets.writer import SheetsWriter

    specs: list[ChildSpec] = []
    for account in config.app.accounts:
        specs.append(ChildSpec(
            name=f"browser:{account.site}:{account.id}", kind="browser",
            actor_cls=_remote(BrowserSession), args=(config, account.id),
            # a `browser` resource marks the nodes that have Chromium (see ray_cluster.yaml)
            options={"num_cpus": 0, "resources": {"browser": 0.01}, "max_concurrency": 8},
            restart=RestartType.PERMANENT, account_id=account.id,
            poll_interval_s=account.poll_interval_s))
    for i in range(config.app.ai.workers):
        specs.append(ChildSpec(name=f"ai:{i}", kind="ai", actor_cls=_remote(AIWorker),
                               args=(config, i, config.settings.namespace), options={"num_cpus": 0},
                               start_method="ping"))
    specs.append(ChildSpec(name="sheets:writer", kind="sheets", actor_cls=_remote(SheetsWriter),
                           args=(config,), options={"num_cpus": 0}))
    if config.app.review.enabled:
        from actors.review.server import ReviewDesk
        specs.append(ChildSpec(name="review:desk", kind="review", actor_cls=_remote(ReviewDesk),
                               args=(config,), options={"num_cpus": 0}))
    return specs
