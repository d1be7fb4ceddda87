"""Configuration: environment (and `.env`) through pydantic-settings, plus the YAML file in conf/.

`load()` validates everything before any actor starts and raises `ConfigError`, whose message
is one line naming each bad variable and what is wrong with it. Secrets are `SecretStr`.
"""
from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import yaml
from pydantic import (AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError,
                      field_validator, model_validator)
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.sitespec import SiteConf

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "conf" / "replydesk.yaml"


class ConfigError(ValueError):
    """A start-up configuration error; its message is one line naming each bad variable."""


def _check_url(value: str, schemes: tuple[str, ...], what: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        raise ValueError(f"must be a {what} URL (scheme {' or '.join(s + '://' for s in schemes)})")
    if not parsed.hostname:
        raise ValueError(f"must be a {what} URL with a host name")
    try:
        parsed.port
    except ValueError as exc:
        raise ValueError(f"has a bad port ({exc})") from None
    return value


def _no_clear_secret(var: str, value: str | None, secret: str) -> None:
    url = urlparse(value or "")
    if url.scheme == "http" and not is_loopback(url.hostname or ""):
        raise ValueError(f"{var}: http:// to {url.hostname} would send {secret} in clear; "
                         "use https://, or set REPLYDESK_ALLOW_INSECURE_HTTP=true for a "
                         "trusted private network")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# URLs whose requests carry a secret (the AI key, the site password, Google's OAuth token): plain
# http:// is refused for them unless the host is this machine or REPLYDESK_ALLOW_INSECURE_HTTP says so.
# (Each site's own URL variable carries its accounts' passwords: checked in load().)
SECRET_CARRYING_URLS = {"ai_api_url": ("AI_API_URL", "AI_API_KEY"),
                        "sheets_api_url": ("SHEETS_API_URL", "Google's access token")}


class Settings(BaseSettings):
    """Environment variables (the seed's names are kept) and `.env`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      populate_by_name=True, hide_input_in_errors=True)

    headless: bool = Field(True, validation_alias=AliasChoices("PUPPETEER_HEADLESS", "HEADLESS"))
    rabbitmq_url: str = Field(validation_alias="RABBITMQ_URL")
    mongodb_uri: str = Field(validation_alias="MONGODB_URI")
    mongodb_db: str = Field("replydesk", validation_alias="MONGODB_DB")
    google_sheet_id: str = Field(validation_alias="GOOGLE_SHEET_ID", min_length=1)
    google_credentials_file: Path | None = Field(None, validation_alias="GOOGLE_CREDENTIALS_FILE")
    sheets_api_url: str | None = Field(None, validation_alias="SHEETS_API_URL")
    ai_api_key: SecretStr = Field(validation_alias="AI_API_KEY")
    ai_api_url: str = Field(validation_alias="AI_API_URL")
    ai_model: str | None = Field(None, validation_alias="AI_MODEL")
    review_token: SecretStr | None = Field(None, validation_alias="REVIEW_TOKEN")
    # several reviewers: `name=token` pairs (comma or newline separated), or a YAML/JSON file of
    # `name: token` (or `name: {token: ..., accounts: [...]}`)
    review_tokens: SecretStr | None = Field(None, validation_alias="REVIEW_TOKENS")
    review_tokens_file: Path | None = Field(None, validation_alias="REVIEW_TOKENS_FILE")
    # reviewer notifications: apprise URLs (they hold webhook secrets), separated by commas,
    # whitespace or newlines, or one per line in a file
    notify_urls: SecretStr | None = Field(None, validation_alias="NOTIFY_URLS")
    notify_urls_file: Path | None = Field(None, validation_alias="NOTIFY_URLS_FILE")
    config_file: Path = Field(DEFAULT_CONFIG, validation_alias="REPLYDESK_CONFIG")
    namespace: str = Field("replydesk", validation_alias="REPLYDESK_NAMESPACE",
                           pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    chromium_path: str = Field("/usr/lib/chromium/chromium", validation_alias="CHROMIUM_PATH")
    otel_endpoint: str | None = Field(None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    trace_file: Path | None = Field(None, validation_alias="REPLYDESK_TRACE_FILE")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    allow_insecure_http: bool = Field(False, validation_alias="REPLYDESK_ALLOW_INSECURE_HTTP")

    @field_validator("rabbitmq_url")
    @classmethod
    def _amqp(cls, v: str) -> str:
        _check_url(v, ("amqp", "amqps"), "AMQP")
        url = urlparse(v)
        # RabbitMQ's default account: anyone who knows the broker's address knows its password
        if unquote(url.username or "") == "guest" and unquote(url.password or "guest") == "guest" \
                and not is_loopback(url.hostname or ""):
            raise ValueError(f"the default guest:guest account must not be used off loopback "
                             f"(host {url.hostname}); create a broker user with its own password")
        return v

    @field_validator("mongodb_uri")
    @classmethod
    def _mongo(cls, v: str) -> str:
        return _check_url(v, ("mongodb", "mongodb+srv"), "MongoDB")

    @field_validator("ai_api_url", "sheets_api_url", "otel_endpoint")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        return None if v in (None, "") else _check_url(v, ("http", "https"), "HTTP").rstrip("/")

    @field_validator("ai_api_key")
    @classmethod
    def _not_empty(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value():
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _no_secrets_in_clear(self) -> "Settings":
        if self.allow_insecure_http:
            return self
        for field, (var, secret) in SECRET_CARRYING_URLS.items():
            _no_clear_secret(var, getattr(self, field), secret)
        return self

    @model_validator(mode="after")
    def _sheets_auth(self) -> "Settings":
        if self.sheets_api_url is None:
            f = self.google_credentials_file
            if f is None:
                raise ValueError("GOOGLE_CREDENTIALS_FILE: required to reach Google Sheets "
                                 "(or set SHEETS_API_URL to a Sheets stand-in)")
            if not f.is_file() or not os.access(f, os.R_OK):
                raise ValueError(f"GOOGLE_CREDENTIALS_FILE: {f} is missing or unreadable")
        return self


class AccountConf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    site: str = Field("meetme", pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    username_env: str = Field("MEETME_USERNAME", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # its login name
    password_env: str = Field("MEETME_PASSWORD", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # its password
    poll_interval_s: float = Field(5.0, gt=0)
    navigations_per_minute: int = Field(30, gt=0)
    sends_per_minute: int = Field(4, gt=0)
    max_pages: int = Field(3, ge=1, le=50)       # how deep a conversation is read the first time
    catch_up_pages: int = Field(50, ge=1, le=500)  # how far back to look for the last stored message
    # A conversation whose inbox item looks unchanged is skipped, but read again at least this
    # often: an inbox item need not show every change (identical text in the same minute).
    revisit_s: float = Field(60.0, ge=0)
    # A pass reads every changed conversation first, then at most this many due revisits (the
    # longest unread first): a big inbox is revisited over several passes, never all in one
    # while new messages wait behind it.
    revisits_per_pass: int = Field(3, ge=1)
    # A live site (`live: true` in its spec) is read when its open inbox page changes; its inbox
    # is still reloaded at least this often, in case the push channel stopped silently.
    safety_poll_s: float = Field(60.0, gt=0)


class BrowserConf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # own_browser: a Chromium per session; hosted: one process per node runs every session
    # there (one driver, one Chromium), each account still its own named actor
    # (actors/browser/hosted.py)
    layout: Literal["own_browser", "hosted"] = "own_browser"
    max_concurrent_navigations: int = Field(4, ge=1)
    navigation_timeout_s: float = Field(15.0, gt=0)
    page_retries: int = Field(3, ge=0)
    artifacts_dir: Path = Path("var/artifacts")
    selector_timeout_s: float = Field(3.0, gt=0)  # how long a required element may take to appear
    retry_backoff_s: float = Field(0.2, gt=0)     # first wait between page retries (exponential)


class BreakerConf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    failure_threshold: int = Field(5, ge=1)
    cooldown_s: float = Field(30.0, gt=0)
    fail_fast: bool = False        # while open: raise at once (True) or wait out the cool-down


class AIConf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workers: int = Field(2, ge=1)
    concurrency: int = Field(8, ge=1)
    model: str = "gpt-4o-mini"
    requests_per_minute: int = Field(600, ge=1)
    max_concurrent_requests: int = Field(32, ge=1)
    connect_timeout_s: float = Field(5.0, gt=0)
    timeout_s: float = Field(60.0, gt=0)
    max_attempts: int = Field(5, ge=1)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(20.0, gt=0)
    history_messages: int = Field(20, ge=1)
    max_reply_chars: int = Field(2000, ge=1)
    # structured output: auto = json_schema, stepping down to json_object, then the prompt alone,
    # as the endpoint rejects each (remembered per endpoint)
    response_format: Literal["auto", "json_schema", "json_object", "none"] = "auto"
    max_tokens: int | None = Field(None, ge=1)                  # None: not sent
    max_tokens_on_truncation: int | None = Field(None, ge=1)    # one retry with more on "length"
    prompt_file: Path = Path("conf/prompts/draft.yaml")
    breaker: BreakerConf = BreakerConf()


class SheetsConf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    worksheet: str = "replydesk"
    columns: list[str] = ["row_id", "kind", "account", "conversation", "sender", "time", "text",
                          "classification", "status"]
    batch_size: int = Field(200, ge=1)
    linger_s: float = Field(1.0, ge=0)
    max_writes_per_minute: int = Field(60, ge=1)
    max_rows_per_request: int = Field(1000, ge=1)  # one append's payload cap when backlogged
    max_attempts: int = Field(8, ge=1)
    backoff_initial_s: float = Field(1.0, gt=0)   # 429/5xx: exponential backoff with jitter
    backoff_max_s: float = Field(60.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    timeout_s: float = Field(60.0, gt=0)

    @field_validator("columns")
    @classmethod
    def _row_id_first(cls, v: list[str]) -> list[str]:
        if not v or v[0] != "row_id":
            raise ValueError("the first column must be row_id (it is how the writer avoids duplicates)")
        return v


class RestartConf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_restarts: int = Field(5, ge=0)
    within_s: float = Field(60.0, gt=0)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(10.0, gt=0)


class ReconcileConf(BaseModel):
    """Anti-entropy: every `interval_s`, messages seen in the last `lookback_s` (but more than
    `grace_s` ago, so their own answer path has had its time) that have no draft, no
    classification and no dead letter are drafted again; drafts whose `draft.created` event was
    never queued get it queued."""
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    interval_s: float = Field(60.0, gt=0)
    grace_s: float = Field(300.0, ge=0)
    lookback_s: float = Field(86400.0, gt=0)
    max_per_run: int = Field(100, ge=1)


class SupervisorConf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    heartbeat_s: float = Field(2.0, gt=0)
    restart: RestartConf = RestartConf()
    reconcile: ReconcileConf = ReconcileConf()


class BusConf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefetch: int = Field(64, ge=1)
    delivery_limit: int = Field(5, ge=1)
    confirm_batch: int = Field(200, ge=1)
    max_in_flight: int | None = Field(None, ge=1)       # handler calls in flight; None = prefetch
    heartbeat_s: int = Field(30, ge=0)
    blocked_timeout_s: float = Field(30.0, gt=0)        # broker flow control longer than this = reconnect
    socket_timeout_s: float = Field(5.0, gt=0)
    confirm_timeout_s: float = Field(10.0, gt=0)
    reconnect_initial_s: float = Field(0.2, gt=0)
    reconnect_max_s: float = Field(10.0, gt=0)
    relay_poll_s: float = Field(0.05, gt=0)
    relay_rescan_s: float = Field(600.0, gt=0)         # replayed on a lost change-stream position
    relay_idle_save_s: float = Field(10.0, gt=0)       # idle relay saves its position this often
    depth_interval_s: float = Field(5.0, gt=0)
    # an event whose target actor died or is restarting waits (backoff, delivery kept unacked)
    # this long before the wait counts as a failed delivery
    transient_retry_s: float = Field(600.0, gt=0)
    transient_backoff_initial_s: float = Field(0.25, gt=0)
    transient_backoff_max_s: float = Field(5.0, gt=0)


class ReviewerConf(BaseModel):
    """What the YAML says about one named reviewer (the token itself is a secret: env or file)."""
    model_config = ConfigDict(extra="forbid")
    accounts: list[str] | None = None              # None: every account


class ReviewConf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    reviewers: dict[str, ReviewerConf] = {}        # optional per-reviewer account restrictions
    host: str = "127.0.0.1"
    port: int = Field(8088, ge=0, le=65535)
    allowed_origins: list[str] = []
    token_name: str = "owner"
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    requests_per_minute: int = Field(600, ge=1)    # per client address; bursts up to this many
    max_text_chars: int = Field(4000, ge=1)        # longest reply a reviewer may save
    page_size: int = Field(50, ge=1, le=200)       # default inbox page (a request may ask <= 200)
    poll_interval_s: float = Field(1.0, gt=0)      # how often the page re-reads a draft being sent
    inbox_poll_interval_s: float = Field(5.0, gt=0)  # how often the page re-reads its inbox list
    # HTTPS: the desk serves TLS itself with a PEM certificate chain and key, or sits behind a
    # TLS-terminating proxy. Off loopback one of the two is required: the bearer token and the
    # chat text must not cross a network in clear.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    behind_tls_proxy: bool = False

    @model_validator(mode="after")
    def _https_off_loopback(self) -> "ReviewConf":
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file: set both or neither")
        for name in ("tls_cert_file", "tls_key_file"):
            f = getattr(self, name)
            if f is not None and not (resolve(f).is_file() and os.access(resolve(f), os.R_OK)):
                raise ValueError(f"{name}: {f} is missing or unreadable")
        if self.enabled and not is_loopback(self.host) and self.tls_cert_file is None \
                and not self.behind_tls_proxy:
            raise ValueError(
                f"host {self.host!r} is reachable from other machines, and the review token must "
                "not travel in clear: set tls_cert_file and tls_key_file (HTTPS), or "
                "behind_tls_proxy: true when a TLS-terminating proxy fronts the desk")
        return self

    @property
    def https(self) -> bool:
        return self.tls_cert_file is not None



class NotifyConf(BaseModel):
    """Reviewer notifications (apprise); active when NOTIFY_URLS or NOTIFY_URLS_FILE is set."""
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    max_per_minute: int = Field(6, ge=1)           # more drafts than this are sent as digests
    desk_url: str | None = None                    # links in notifications; default: the desk's
    excerpt_chars: int = Field(200, ge=20, le=2000)
    digest_max_items: int = Field(30, ge=1)        # listed in one digest (the rest are counted)
    max_attempts: int = Field(10, ge=1)            # per notification, then dead-lettered
    backoff_initial_s: float = Field(2.0, gt=0)    # exponential, jittered
    backoff_max_s: float = Field(300.0, gt=0)
    timeout_s: float = Field(10.0, gt=0)
    on_draft: bool = True
    on_needs_login: bool = True
    on_child_failed: bool = True
    on_dead_letter: bool = True

    @field_validator("desk_url")
    @classmethod
    def _desk_url(cls, v: str | None) -> str | None:
        return None if not v else _check_url(v, ("http", "https"), "HTTP").rstrip("/")


class AppConfig(BaseModel):
    """The YAML file in conf/: accounts, pool sizes, sites and the rest of the tuning."""
    model_config = ConfigDict(extra="forbid")
    accounts: list[AccountConf] = Field(min_length=1)
    browser: BrowserConf = BrowserConf()
    ai: AIConf = AIConf()
    sheets: SheetsConf = SheetsConf()
    supervisor: SupervisorConf = SupervisorConf()
    bus: BusConf = BusConf()
    review: ReviewConf = ReviewConf()
    notify: NotifyConf = NotifyConf()

    @field_validator("accounts")
    @classmethod
    def _unique_ids(cls, v: list[AccountConf]) -> list[AccountConf]:
        ids = [a.id for a in v]
        if len(ids) != len(set(ids)):
            raise ValueError("account ids must be unique")
        return v


class Credentials(BaseModel):
    username: str
    password: SecretStr


REVIEWER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,39}$"
MIN_TOKEN_CHARS = 16


class ReviewerAuth(BaseModel):
    """One named reviewer: the bearer token and the accounts they review (None = all)."""
    name: str
    token: SecretStr
    accounts: list[str] | None = None
    source: str = "REVIEW_TOKEN"                   # the variable it came from (for errors)

    def sees(self, account_id: str | None) -> bool:
        return self.accounts is None or account_id in self.accounts


class Config(BaseModel):
    """Everything a process needs, validated: handed to actors as one picklable object. Site URLs
    and account credentials are resolved once, in the process that loaded the config."""
    settings: Settings
    app: AppConfig
    sites: dict[str, SiteConf]
    site_urls: dict[str, str]
    site_hosts: dict[str, dict[str, str]] = {}   # site -> its other hosts (spec `hosts`), resolved
    account_credentials: dict[str, Credentials]
    reviewers: dict[str, ReviewerAuth] = {}
    notify_urls: list[SecretStr] = []

    def site(self, name: str) -> SiteConf:
        return self.sites[name]

    def account(self, account_id: str) -> AccountConf:
        for a in self.app.accounts:
            if a.id == account_id:
                return a
        raise KeyError(account_id)

    def credentials(self, account: AccountConf) -> Credentials:
        return self.account_credentials[account.id]

    def site_url(self, site: str) -> str:
        return self.site_urls[site]

    def host_urls(self, site: str) -> dict[str, str]:
        """The site's other hosts by name (`hosts` in its spec, env overrides applied)."""
        return dict(self.site_hosts.get(site, {}))

    def secret_values(self) -> list[str]:
        """Every configured secret: the redaction set of logs and traces."""
        s = self.settings
        values = [s.ai_api_key.get_secret_value()]
        if s.review_token is not None:
            values.append(s.review_token.get_secret_value())
        values += [r.token.get_secret_value() for r in self.reviewers.values()]
        values += [c.password.get_secret_value() for c in self.account_credentials.values()]
        for url in self.notify_urls:       # the whole URL and each secret-looking part of it
            raw = url.get_secret_value()
            values.append(raw)
            values += [p for p in re.split(r"[/:@?&=#,]+", raw.split("://", 1)[-1]) if len(p) >= 12]
        for url in (s.rabbitmq_url, s.mongodb_uri):   # broker/database passwords (not "guest")
            password = unquote(urlparse(url).password or "")
            if len(password) >= 8:
                values.append(password)
        return list(dict.fromkeys(v for v in values if v))


def _credentials(account: AccountConf, env: dict[str, str]) -> Credentials:
    problems = []
    for var in (account.username_env, account.password_env):
        if var not in env:
            problems.append(f"{var}: required but not set (credentials of account {account.id!r})")
        elif not env[var]:
            problems.append(f"{var}: must not be empty (credentials of account {account.id!r})")
    if problems:
        raise ConfigError("config error: " + "; ".join(problems))
    return Credentials(username=env[account.username_env], password=SecretStr(env[account.password_env]))


def _site_url(site: SiteConf, env: dict[str, str], base_url: str | None = None,
              url_env: str | None = None) -> str:
    base_url, url_env = (base_url, url_env) if base_url else (site.base_url, site.url_env)
    value = env.get(url_env) if url_env else None
    if not value:
        return base_url.rstrip("/")
    try:
        return _check_url(value, ("http", "https"), "HTTP").rstrip("/")
    except ValueError as exc:
        raise ConfigError(f"config error: {url_env}: {exc}") from None


def _read_secret_file(var: str, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config error: {var}: {path} cannot be read ({type(exc).__name__})") from None


def _token_problem(token: str) -> str | None:
    if len(token) < MIN_TOKEN_CHARS:
        return f"too short (at least {MIN_TOKEN_CHARS} characters)"
    if not all(33 <= ord(c) <= 126 for c in token):
        return "must be printable ASCII without spaces"
    return None


def _reviewer_entries(settings: Settings) -> list[tuple[str, str, str, list[str] | None]]:
    """(variable, name, token, accounts) from REVIEW_TOKEN, REVIEW_TOKENS and REVIEW_TOKENS_FILE."""
    out: list[tuple[str, str, str, list[str] | None]] = []
    if settings.review_tokens is not None:
        for i, pair in enumerate(p.strip() for p in re.split(r"[,\n]", settings.review_tokens.get_secret_value())):
            if not pair:
                continue
            name, sep, token = pair.partition("=")
            if not sep or not name.strip() or not token.strip():
                raise ConfigError(f"config error: REVIEW_TOKENS: entry {i + 1} is not name=token")
            out.append(("REVIEW_TOKENS", name.strip(), token.strip(), None))
    if settings.review_tokens_file is not None:
        var, f = "REVIEW_TOKENS_FILE", settings.review_tokens_file
        try:
            data = yaml.safe_load(_read_secret_file(var, f))
        except yaml.YAMLError:
            raise ConfigError(f"config error: {var}: {f} is not valid YAML or JSON") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config error: {var}: {f} must map reviewer names to tokens")
        for name, value in data.items():
            accounts = None
            if isinstance(value, dict):
                accounts, value = value.get("accounts"), value.get("token")
                if accounts is not None and (not isinstance(accounts, list)
                                             or not all(isinstance(a, str) for a in accounts)):
                    raise ConfigError(f"config error: {var}: accounts of {str(name)!r} must be a list of account ids")
            if not isinstance(value, str) or not value:
                raise ConfigError(f"config error: {var}: the token of {str(name)!r} must be a non-empty string")
            out.append((var, str(name), value, accounts))
    return out


def _reviewers(settings: Settings, app: AppConfig) -> dict[str, ReviewerAuth]:
    """Every named reviewer; REVIEW_TOKEN alone is `review.token_name` (default `owner`)."""
    entries = _reviewer_entries(settings)
    if settings.review_token is not None and settings.review_token.get_secret_value():
        entries.insert(0, ("REVIEW_TOKEN", app.review.token_name,
                           settings.review_token.get_secret_value(), None))
    known = {a.id for a in app.accounts}
    out: dict[str, ReviewerAuth] = {}
    tokens: dict[str, str] = {}
    for var, name, token, accounts in entries:
        if not re.match(REVIEWER_NAME, name):
            raise ConfigError(f"config error: {var}: reviewer name {name[:40]!r} must be 1-40 "
                              "letters, digits or _.@-")
        if name in out:
            raise ConfigError(f"config error: {var}: reviewer {name!r} is named twice "
                              f"(also in {out[name].source})")
        problem = _token_problem(token)
        if problem:
            who = "" if var == "REVIEW_TOKEN" else f"the token of {name!r}: "
            raise ConfigError(f"config error: {var}: {who}{problem}")
        if token in tokens:
            raise ConfigError(f"config error: {var}: {name!r} and {tokens[token]!r} share one token")
        tokens[token] = name
        yaml_accounts = app.review.reviewers.get(name)
        if accounts is None and yaml_accounts is not None:
            accounts = yaml_accounts.accounts
        unknown = sorted(set(accounts or ()) - known)
        if unknown:
            raise ConfigError(f"config error: review.reviewers.{name}.accounts: unknown account "
                              f"{', '.join(unknown)}")
        out[name] = ReviewerAuth(name=name, token=SecretStr(token), accounts=accounts, source=var)
    stray = sorted(set(app.review.reviewers) - set(out))
    if stray:
        raise ConfigError(f"config error: review.reviewers: no token for {', '.join(stray)} "
                          "(set REVIEW_TOKENS or REVIEW_TOKENS_FILE)")
    return out


def _notify_urls(settings: Settings, app: AppConfig) -> list[SecretStr]:
    """The apprise URLs, each checked by apprise itself: a bad one stops start-up naming the
    variable and the URL's scheme (never the URL: it holds the webhook's secret)."""
    raw: list[tuple[str, str]] = []
    if settings.notify_urls is not None:
        raw += [("NOTIFY_URLS", u) for u in re.split(r"[\s,]+", settings.notify_urls.get_secret_value()) if u]
    if settings.notify_urls_file is not None:
        text = _read_secret_file("NOTIFY_URLS_FILE", settings.notify_urls_file)
        raw += [("NOTIFY_URLS_FILE", line.strip()) for line in text.splitlines()
                if line.strip() and not line.strip().startswith("#")]
    if not raw or not app.notify.enabled:
        return []
    import apprise  # only when notifications are configured
    for i, (var, url) in enumerate(raw):
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if not scheme or apprise.Apprise.instantiate(url, suppress_exceptions=True) is None:
            what = f"a {scheme}:// URL" if scheme.isalnum() and len(scheme) <= 20 else "a URL"
            raise ConfigError(f"config error: {var}: entry {i + 1} ({what}) is not a notification "
                              "URL apprise can use (see https://github.com/caronc/apprise/wiki)")
    return [SecretStr(u) for _, u in raw]


def _env_with_dotenv() -> dict[str, str]:
    """The environment over `.env` (python-dotenv parses it as pydantic-settings does)."""
    from dotenv import dotenv_values
    env = {k: v for k, v in dotenv_values(".env").items() if v is not None} if Path(".env").is_file() else {}
    env.update(os.environ)
    return env


def _env_name(field: str) -> str:
    info = Settings.model_fields.get(field)
    if info is None:
        return field
    alias = info.validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return " or ".join(str(c) for c in alias.choices)
    return field.upper()


def _settings_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = [str(x) for x in err["loc"]]
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "required but not set"
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if loc:
            name = next((n for f in Settings.model_fields if (n := _env_name(f)) and
                         (loc[0] == f or loc[0] in n.split(" or "))), loc[0])
            parts.append(f"{name}: {msg}")
        else:
            parts.append(msg)
    return "config error: " + "; ".join(parts)


def _yaml_error(path: Path, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return f"config error: {path}: " + "; ".join(parts)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config error: {path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config error: {path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_settings_error(exc)) from None


def load(config_file: Path | str | None = None, **overrides: Any) -> Config:
    """Validate environment, YAML config and site files; raise ConfigError naming what is wrong."""
    settings = load_settings(**overrides)
    path = Path(config_file) if config_file else settings.config_file
    if not path.is_absolute() and not path.exists():
        path = ROOT / path
    try:
        app = AppConfig.model_validate(_read_yaml(path) or {})
    except ValidationError as exc:
        raise ConfigError(_yaml_error(path, exc)) from None
    sites: dict[str, SiteConf] = {}
    for name in sorted({a.site for a in app.accounts}):
        site_path = path.parent / "sites" / f"{name}.yaml"
        try:
            sites[name] = SiteConf.model_validate(_read_yaml(site_path) or {})
        except ValidationError as exc:
            raise ConfigError(_yaml_error(site_path, exc)) from None
    reviewers = _reviewers(settings, app)
    if app.review.enabled and not reviewers:
        raise ConfigError("config error: REVIEW_TOKEN: required when the review desk is enabled "
                          "(or REVIEW_TOKENS / REVIEW_TOKENS_FILE for several named reviewers)")
    notify_urls = _notify_urls(settings, app)
    env = _env_with_dotenv()
    creds = {a.id: _credentials(a, env) for a in app.accounts}
    urls = {name: _site_url(site, env) for name, site in sites.items()}
    hosts = {name: {h: _site_url(site, env, host.url, host.env) for h, host in site.hosts.items()}
             for name, site in sites.items() if site.hosts}
    if not settings.allow_insecure_http:
        for name, site in sites.items():
            passwords = sorted({a.password_env for a in app.accounts if a.site == name})
            try:
                _no_clear_secret(site.url_env or f"sites/{name}.yaml base_url", urls[name],
                                 ", ".join(passwords))
                for h, url in hosts.get(name, {}).items():   # the login may post on any of them
                    _no_clear_secret(site.hosts[h].env or f"sites/{name}.yaml hosts.{h}", url,
                                     ", ".join(passwords))
            except ValueError as exc:
                raise ConfigError(f"config error: {exc}") from None
    return Config(settings=settings, app=app, sites=sites, site_urls=urls, site_hosts=hosts,
                  account_credentials=creds,
                  reviewers=reviewers, notify_urls=notify_urls)


def resolve(path: Path) -> Path:
    """A config-relative path (prompt file, artifacts dir) made absolute against the repo root."""
    return path if path.is_absolute() else ROOT / path
