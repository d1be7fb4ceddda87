"""Which children a config asks for, and how each is started (names, resources, restart type)."""
from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from contracts.settings import Config
from supervisor.children import ChildSpec
from supervisor.policy import RestartType


def _remote(cls: Any) -> Any:
    return cls if hasattr(cls, "options") else ray.remote(cls)


def near(node_id: str | None) -> dict[str, Any]:
    """Actor options pinning an actor to `node_id`: the control plane stays off browser nodes.

    Ray places 0-CPU actors on any node (a soft affinity spilled about half of them in
    tests/scenarios/node_loss.py), so without this the supervisor, AI workers, sheets writer and
    review desk land on browser nodes, and losing one browser node takes them down with it. The pin
    is hard: children are pinned to the supervisor's own node, which is alive while the supervisor
    is (a supervisor restarted elsewhere pins new children to its new node); the supervisor is
    pinned to the driver's node, the head under `ray job submit`, whose loss ends the cluster."""
    if node_id is None:
        return {}
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)}


def _fingerprint(*parts: Any) -> str:
    """What a child's behaviour depends on, hashed (secrets included only as hashes)."""
    from contracts.ids import stable_hash
    return stable_hash(*(p.model_dump_json() if hasattr(p, "model_dump_json") else repr(p)
                         for p in parts), length=16)


def _browser_fingerprint(config: Config, account: Any) -> str:
    from contracts.ids import stable_hash
    cred = config.credentials(account)
    return _fingerprint(account, config.site(account.site), config.site_url(account.site),
                        config.app.browser, cred.username,
                        stable_hash(cred.password.get_secret_value()),
                        config.settings.mongodb_uri, config.settings.headless)


def child_specs(config: Config, home_node: str | None = None) -> list[ChildSpec]:
    """The children `config` asks for; all but the browser sessions are pinned to `home_node`."""
    from contracts.ids import stable_hash
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
            poll_interval_s=account.poll_interval_s,
            fingerprint=_browser_fingerprint(config, account)))
    for i in range(config.app.ai.workers):
        specs.append(ChildSpec(name=f"ai:{i}", kind="ai", actor_cls=_remote(AIWorker),
                               args=(config, i, config.settings.namespace),
                               options={"num_cpus": 0, **near(home_node)},
                               start_method="ping",
                               fingerprint=_fingerprint(config.app.ai, config.settings.ai_api_url,
                                                        config.settings.ai_model)))
    specs.append(ChildSpec(name="sheets:writer", kind="sheets", actor_cls=_remote(SheetsWriter),
                           args=(config,), options={"num_cpus": 0, **near(home_node)},
                           fingerprint=_fingerprint(config.app.sheets, config.settings.google_sheet_id)))
    if config.notify_urls and config.app.notify.enabled:
        from actors.notify.actor import ACTOR_NAME, Notifier
        specs.append(ChildSpec(name=ACTOR_NAME, kind="notify", actor_cls=_remote(Notifier),
                               args=(config,), options={"num_cpus": 0, **near(home_node)},
                               fingerprint=_fingerprint(config.app.notify,
                                                        stable_hash(*config.secret_values()))))
    if config.app.review.enabled:
        from actors.review.server import ReviewDesk
        specs.append(ChildSpec(name="review:desk", kind="review", actor_cls=_remote(ReviewDesk),
                               args=(config,), options={"num_cpus": 0, **near(home_node)},
                               # its tokens too: a reviewer added or revoked restarts the desk
                               fingerprint=_fingerprint(config.app.review, stable_hash(*config.secret_values()))))
    return specs
