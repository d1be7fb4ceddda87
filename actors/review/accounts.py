"""Account health for the desk (see openapi.yaml): every account the reviewer reviews, with its
state (`running`, `degraded`, `needs_login`, `failed`, `stopped`, ...), last successful pass,
messages seen today, the site elements that miss, the last error (secrets masked), and a
"retry now" for a failed session or one waiting for a login. The supervisor is asked over Ray;
without one (a desk run alone) the states are `unknown` and retry answers 503."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from actors.review.errors import ApiError
from contracts import names, telemetry

routes = web.RouteTableDef()
RETRYABLE = {"failed", "needs_login"}


async def _supervisor(namespace: str) -> Any | None:
    import ray
    if not ray.is_initialized():
        return None
    try:
        # not a database call: a name lookup in Ray's control store, a blocking call
        return await asyncio.to_thread(ray.get_actor, names.SUPERVISOR, namespace)
    except ValueError:
        return None


def _row(account: Any, child: dict | None, seen_today: int) -> dict[str, Any]:
    info = (child or {}).get("info", {})
    health = info.get("health", {})
    last_poll = info.get("last_poll") or {}
    state = (child or {}).get("status") or "unknown"
    return {"account": account.id, "site": account.site, "state": state,
            "restarts": (child or {}).get("restarts", 0),
            "last_pass_at": last_poll.get("at"), "messages_today": seen_today,
            "missing": [{"element": m["element"], "detail": m.get("detail", ""),
                         "url": m.get("url", "")} for m in health.get("missing", [])],
            # what a person must act on now: the login handoff's reason before an older error
            "last_error": telemetry.redact((health.get("reason") if state == "needs_login" else None)
                                           or (child or {}).get("last_error") or "") or None,
            "retryable": state in RETRYABLE}


async def account_rows(request: web.Request, reviewer: Any) -> tuple[list[dict[str, Any]], bool]:
    from actors.review.api import CONFIG, STORE
    config, store = request.app[CONFIG], request.app[STORE]
    children: dict[str, dict] = {}
    sup = await _supervisor(config.settings.namespace)
    if sup is not None:
        status = await asyncio.wait_for(sup.status.remote(), 30)
        children = {c.get("account_id"): c for c in status["children"] if c["kind"] == "browser"}
    midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    since = midnight.isoformat().replace("+00:00", "Z")
    rows = []
    for account in config.app.accounts:
        if not reviewer.sees(account.id):
            continue
        seen = await store.messages.seen_since(account.id, since)
        rows.append(_row(account, children.get(account.id), seen))
    return rows, sup is not None


@routes.get("/api/accounts")
async def list_accounts(request: web.Request) -> web.Response:
    from actors.review.api import _reviewer
    rows, live = await account_rows(request, _reviewer(request))
    return web.json_response({"accounts": rows, "supervisor": live})


@routes.post("/api/accounts/{account_id}/retry")
async def retry_account(request: web.Request) -> web.Response:
    from actors.review.api import CONFIG, _reviewer
    config = request.app[CONFIG]
    account_id = request.match_info["account_id"]
    account = next((a for a in config.app.accounts if a.id == account_id), None)
    if account is None or not _reviewer(request).sees(account_id):
        raise ApiError(404, f"no account {account_id!r}")
    sup = await _supervisor(config.settings.namespace)
    if sup is None:
        raise ApiError(503, "the supervisor is not reachable: retry from the command line")
    snapshot = await asyncio.wait_for(sup.retry.remote(f"browser:{account.site}:{account.id}"), 60)
    if snapshot.get("status") == "unknown":
        raise ApiError(404, f"the supervisor runs no session for account {account_id!r}")
    return web.json_response({"account": account_id, "state": snapshot.get("status")})
