"""Before any actor starts: do the broker and the database accept our credentials?

A broker that refuses our user (ACCESS_REFUSED), a virtual host that does not exist, a database
that refuses our login: no amount of restarting fixes these, so the start stops at once with one
line naming the variable (its secret masked) and a non-zero exit, instead of restarting the
router for minutes and blaming something else. A system that does not answer yet is not
refused: the actors wait for it with backoff as they always do, so that is only a warning here.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pika
import pika.exceptions as pe
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from contracts.settings import Config

log = logging.getLogger("replydesk.preflight")

TIMEOUT_S = 5.0
MONGO_AUTH_CODES = {13, 18}  # Unauthorized, AuthenticationFailed


@dataclass
class Refused(Exception):
    """A permanent refusal by an outside system: `variable` names what to fix."""
    variable: str
    url: str        # masked
    reason: str

    def __str__(self) -> str:
        return f"{self.variable}: {self.reason} ({self.url}); fix {self.variable} and start again"


def masked(url: str) -> str:
    """`url` with its password (if any) replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def broker_refusal(exc: BaseException) -> str | None:
    """Why the broker refused us for good, or None when the error may pass (down, network)."""
    if isinstance(exc, (pe.ProbableAuthenticationError, pe.AuthenticationError)):
        return "the broker refused the user name or password (ACCESS_REFUSED)"
    if isinstance(exc, pe.ProbableAccessDeniedError):
        return "the broker refused access to the virtual host (it does not exist or the user may not use it)"
    if isinstance(exc, pe.ConnectionClosedByBroker) and exc.reply_code in (403, 530):
        return f"the broker refused the connection: {exc.reply_text}"
    if isinstance(exc, pe.AMQPConnectionError) and exc.args:
        # pika wraps the handshake's refusal in the last attempt's error
        inner = exc.args[0]
        if isinstance(inner, BaseException) and inner is not exc:
            return broker_refusal(inner)
    return None


def check_broker(url: str) -> None:
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = TIMEOUT_S
    params.stack_timeout = TIMEOUT_S * 2
    params.blocked_connection_timeout = TIMEOUT_S
    try:
        pika.BlockingConnection(params).close()
    except (pe.AMQPError, OSError) as exc:
        reason = broker_refusal(exc)
        if reason:
            raise Refused("RABBITMQ_URL", masked(url), reason) from None
        log.warning("the broker does not answer yet; the actors will wait for it",
                    extra={"url": masked(url), "error": type(exc).__name__})


def check_database(uri: str) -> None:
    client: MongoClient = MongoClient(uri, serverSelectionTimeoutMS=int(TIMEOUT_S * 1000),
                                      connectTimeoutMS=int(TIMEOUT_S * 1000))
    try:
        client.admin.command("ping")
    except OperationFailure as exc:
        if exc.code in MONGO_AUTH_CODES:
            raise Refused("MONGODB_URI", masked(uri),
                          "the database refused the user name or password") from None
        raise
    except PyMongoError as exc:
        log.warning("the database does not answer yet; the actors will wait for it",
                    extra={"url": masked(uri), "error": type(exc).__name__})
    finally:
        client.close()


def check(config: Config) -> None:
    """Raise `Refused` when the broker or the database refuses our credentials for good."""
    check_broker(config.settings.rabbitmq_url)
    check_database(config.settings.mongodb_uri)
