"""Which children a config asks for, and how each is started (names, resources, restart type)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from contracts import names
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


def _common(config: Config) -> str:
    """What every child depends on: the environment settings (database, broker, namespace,
    URLs, paths; secret values are masked in this dump and hashed where a child uses them)."""
    return _fingerprint(config.settings)


def _secret(value: Any) -> str:
    from contracts.ids import stable_hash
    return stable_hash(value.get_secret_value() if hasattr(value, "get_secret_value") else value)


def _file(path: Any) -> str:
    """A file's contents by hash (a prompt or certificate edited at the same path counts)."""
    from contracts.settings import resolve
    try:
        return _secret(resolve(Path(path)).read_bytes().hex()) if path else ""
    except OSError:
        return "missing"


def _browser_fingerprint(config: Config, account: Any) -> str:
    cred = config.credentials(account)
    return _fingerprint(_common(config), account, config.site(account.site),
                        config.site_url(account.site), config.app.browser, cred.username,
                        _secret(cred.password))


def browser_nodes(config: Config) -> list[str]:
    """The alive nodes that run browsers (a `browser` resource), when the layout has a host per
    node (hosted); none otherwise (each session then owns its browser)."""
    if config.app.browser.layout != "hosted":
        return []
    return sorted(n["NodeID"] for n in ray.nodes()
                  if n.get("Alive") and n.get("Resources", {}).get("browser", 0) > 0)


def child_specs(config: Config, home_node: str | None = None,
                browser_nodes: list[str] | tuple[str, ...] = ()) -> list[ChildSpec]:
    """The children `config` asks for; all but the browser sessions and hosts are pinned to
    `home_node`; one session host is pinned to each of `browser_nodes` (hosted layout)."""
    from actors.browser.hosted import HostedSession, SessionHost
    from actors.ai.worker import AIWorker
    from actors.browser.session import BrowserSession
    from actors.sheets.writer import SheetsWriter

    from actors.ai.gate import AIGate
    from supervisor.router import RouterActor

    # the router first: it declares the topology before any child publishes an event
    specs: list[ChildSpec] = [
        ChildSpec(name=names.ROUTER, kind="router", actor_cls=RouterActor, args=(config,),
                  options={"num_cpus": 0, **near(home_node)},
                  fingerprint=_fingerprint(_common(config), config.app.bus, config.app.supervisor.reconcile,
                                           config.app.notify, [(a.id, a.site) for a in config.app.accounts],
                                           *(_secret(u) for u in config.notify_urls))),
        # the AI workers' shared rate limit and breaker (adopted if a worker created it first)
        ChildSpec(name=names.GATE, kind="gate", actor_cls=AIGate, args=(config,),
                  options={"num_cpus": 0, "get_if_exists": True, **near(home_node)}, start_method="ping",
                  fingerprint=_fingerprint(_common(config), config.app.ai)),
    ]
    # before the sessions (they attach to it); adopted if a session on a new node created it first
    hosted = config.app.browser.layout == "hosted"
    for node in browser_nodes:
        specs.append(ChildSpec(name=names.browser_host(node), kind="host", actor_cls=SessionHost,
                               args=(config,), options={"num_cpus": 0, "get_if_exists": True, **near(node)},
                               start_method="ping", node_id=node,
                               fingerprint=_fingerprint(_common(config), config.app.browser)))
    for account in config.app.accounts:
        specs.append(ChildSpec(
            name=names.browser(account.site, account.id), kind="browser",
            actor_cls=HostedSession if hosted else _remote(BrowserSession), args=(config, account.id),
            # a `browser` resource marks the nodes that have Chromium (see ray_cluster.yaml)
            options={"num_cpus": 0, "resources": {"browser": 0.01}, "max_concurrency": 8},
            restart=RestartType.PERMANENT, account_id=account.id,
            poll_interval_s=account.poll_interval_s,
            fingerprint=_browser_fingerprint(config, account)))
    for i in range(config.app.ai.workers):
        specs.append(ChildSpec(name=names.ai_worker(i), kind="ai", actor_cls=_remote(AIWorker),
                               args=(config, i, config.settings.namespace),
                               options={"num_cpus": 0, **near(home_node)},
                               start_method="ping",
                               fingerprint=_fingerprint(_common(config), config.app.ai,
                                                        _secret(config.settings.ai_key),
                                                        _file(config.app.ai.prompt_file))))
    if config.settings.google_sheet_id is not None:   # no sheet: the desk's CSV has the rows
        specs.append(ChildSpec(name=names.SHEETS, kind="sheets", actor_cls=_remote(SheetsWriter),
                               args=(config,), options={"num_cpus": 0, **near(home_node)},
                               fingerprint=_fingerprint(_common(config), config.app.sheets,
                                                        _file(config.settings.google_credentials_file))))
    if config.notify_urls and config.app.notify.enabled:
        from actors.notify.actor import ACTOR_NAME, Notifier
        specs.append(ChildSpec(name=ACTOR_NAME, kind="notify", actor_cls=_remote(Notifier),
                               args=(config,), options={"num_cpus": 0, **near(home_node)},
                               fingerprint=_fingerprint(_common(config), config.app.notify,
                                                        *(_secret(u) for u in config.notify_urls))))
    if config.app.review.enabled:
        from actors.review.server import ReviewDesk
        specs.append(ChildSpec(name=names.REVIEW, kind="review", actor_cls=_remote(ReviewDesk),
                               args=(config,), options={"num_cpus": 0, **near(home_node)},
                               # its reviewers (tokens, restrictions) and the accounts it lists
                               fingerprint=_fingerprint(
                                   _common(config), config.app.review, [a.id for a in config.app.accounts],
                                   *(f"{n}:{_secret(r.token)}:{r.accounts}" for n, r in sorted(config.reviewers.items())),
                                   _file(config.app.review.tls_cert_file), _file(config.app.review.tls_key_file))))
    return specs
