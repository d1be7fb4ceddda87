"""HTTP security for the review desk: bearer token, CORS allow-list, per-client rate limit, body
size limit and the security headers every response carries.

Authentication is only ever the `Authorization: Bearer` header (never a cookie), so another site
cannot make a reviewer's browser approve anything (no CSRF). The token is compared in constant
time and never logged.
"""
from __future__ import annotations

import hmac
import logging

from aiohttp import web

from actors.review.errors import ApiError, Handler, error_response
from actors.review.ratelimit import TokenBuckets
from contracts.settings import MIN_TOKEN_CHARS, Config, ConfigError, ReviewConf, ReviewerAuth

log = logging.getLogger("replydesk.review")

PUBLIC_PATHS = ("/", "/api/openapi.yaml")          # plus /static/*: no data in any of them
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")


def require_tokens(config: Config) -> list[ReviewerAuth]:
    """The named reviewers (REVIEW_TOKEN is `owner`); a ConfigError naming REVIEW_TOKEN when
    there is none. Each token was checked when the config was loaded (length, printable ASCII)."""
    reviewers = list(config.reviewers.values())
    if not reviewers:
        raise ConfigError("config error: REVIEW_TOKEN: required when the review desk is enabled "
                          "(app.review.enabled); set it to a long random string, or name "
                          "several reviewers in REVIEW_TOKENS / REVIEW_TOKENS_FILE")
    for r in reviewers:
        token = r.token.get_secret_value()
        if len(token) < MIN_TOKEN_CHARS or not token.isascii():
            raise ConfigError(f"config error: {r.source}: the token of {r.name!r} is too short "
                              f"(at least {MIN_TOKEN_CHARS} characters)")
    return reviewers


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith("/static/")


def cors_middleware(conf: ReviewConf):
    """Same origin always; other origins only from `allowed_origins`. A disallowed Origin gets
    403 and no Access-Control-Allow-Origin, so the browser never hands it the response."""
    allowed = frozenset(o.rstrip("/") for o in conf.allowed_origins)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or origin == f"{request.scheme}://{request.host}":
            return await handler(request)
        if origin not in allowed:
            log.warning("request from a disallowed origin refused",
                        extra={"origin": origin[:200], "path": request.path})
            return error_response(403, "this origin is not allowed to use the review desk")
        cors_headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                        "Access-Control-Expose-Headers": "Retry-After"}
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return web.Response(status=204, headers={
                **cors_headers, "Access-Control-Allow-Methods": "GET, POST",
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Max-Age": "600"})
        response = await handler(request)
        response.headers.update(cors_headers)
        return response

    return cors


def rate_limit_middleware(conf: ReviewConf):
    buckets = TokenBuckets(conf.requests_per_minute)

    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        wait = buckets.take(request.remote or "unknown")
        if wait > 0:
            log.warning("rate limit hit", extra={"client": request.remote, "path": request.path})
            raise ApiError(429, "too many requests; wait a moment and try again",
                           {"Retry-After": TokenBuckets.retry_after(wait)})
        return await handler(request)

    return rate_limit


def body_limit_middleware(conf: ReviewConf):
    """Refuses a declared oversized body before reading it; chunked bodies are capped by the
    application's client_max_size (same limit) while being read."""

    @web.middleware
    async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.content_length or 0) > conf.max_body_bytes:
            raise ApiError(413, f"request body too large (limit {conf.max_body_bytes} bytes)")
        return await handler(request)

    return body_limit


REVIEWER = web.RequestKey("reviewer", ReviewerAuth)     # the signed-in reviewer


def auth_middleware(reviewers: list[ReviewerAuth]):
    """Finds the reviewer whose token was sent: every token is compared (constant time, no early
    exit), so the answer's timing tells nothing about which one nearly matched."""
    expected = [(r.token.get_secret_value().encode("ascii"), r) for r in reviewers]

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" or _is_public(request.path):
            return await handler(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="replydesk-review"'}
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(401, "missing review token: send it as 'Authorization: Bearer <token>'",
                           challenge)
        given = given.strip()
        # a token is printable ASCII (checked at start); anything else cannot match, and
        # encoding it (surrogates from undecodable header bytes) must not become a 500
        found = None
        if given.isascii():
            raw = given.encode("ascii")
            for token, reviewer in expected:
                if hmac.compare_digest(raw, token):
                    found = reviewer
        if found is None:
            log.warning("wrong review token", extra={"client": request.remote, "path": request.path})
            raise ApiError(401, "the review token is not valid", challenge)
        request[REVIEWER] = found
        return await handler(request)

    return auth


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, errors included, carries the same protections."""
    h = response.headers
    h["Content-Security-Policy"] = CSP
    h["X-Content-Type-Options"] = "nosniff"
    h["X-Frame-Options"] = "DENY"
    h["Referrer-Policy"] = "no-referrer"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["Cache-Control"] = "no-store" if request.path.startswith("/api/") else "no-cache"
    if request.secure:              # served over HTTPS: browsers must never fall back to HTTP
        h["Strict-Transport-Security"] = "max-age=31536000"
