"""The embedded defaults of `./run up`: what it starts or makes itself when a variable is unset.

- MONGODB_URI unset: SecantusDB on var/db, every commit synced (`--sync-on-commit`, so a SIGKILL
  loses no acknowledged write), kept across runs;
- REVIEW_TOKEN (and REVIEW_TOKENS*) unset: a token generated once, stored in var/review_token
  with mode 600;
- no account credentials at all: the built-in demo site (the phoenix stand-in, run as a child
  process: supervisor/local/demosite.py) with a demo login per account, its own database and
  namespace, fresh each run.

RABBITMQ_URL unset means the local broker (`./run` starts one when none answers), GOOGLE_SHEET_ID
unset means no sheet (the desk's CSV download), AI_API_KEY unset means no key: nothing to start.
`prepare()` puts what it made into os.environ, so the strict `settings.load()` that follows (and
every actor, which gets the loaded Config) sees one ordinary configuration.
"""
from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass, field

from contracts.settings import LOCAL_BROKER, Config
from supervisor.local.demosite import DemoSite
from supervisor.local.mongod import MongoServer
from supervisor.local.paths import Paths

DEMO_DB, DEMO_NAMESPACE = "replydesk_demo", "replydesk-demo"
DEMO_CONVERSATIONS = [   # member ids, as the MeetMe app names conversations
    ("1000001", "Alice", "Hi! I saw you like hiking too. Any favourite trails around here?"),
    ("1000002", "Bob", "Earn 10x on crypto today!!! Send bitcoin to my wallet and get rich"),
    ("1000003", "Carol", "Hey, are you free for a coffee this weekend?"),
]


@dataclass
class Embedded:
    lines: list[str] = field(default_factory=list)   # what runs embedded, and where its data is
    demo_site: str | None = None                     # the demo site's URL when it runs
    db: MongoServer | None = None
    exit: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def close(self) -> None:
        self.exit.close()


def prepare(paths: Paths, pre: Config) -> Embedded:
    """Start or make what `pre` (loaded with embedded=True) leaves unset; see the module doc."""
    out = Embedded()
    try:
        if pre.app.review.enabled and not pre.reviewers:
            token, new = paths.review_token()
            os.environ["REVIEW_TOKEN"] = token
            out.lines.append(f"desk token: {'generated in' if new else 'read from'} {paths.token_file} (mode 600)")
        if not pre.account_credentials:
            out.demo_site = _demo_site(out.exit, pre, paths)
            out.lines.append(f"site: the built-in demo site at {out.demo_site} (no account "
                             "credentials are set; it starts fresh each run)")
        if pre.settings.mongodb_uri is None:
            out.db = MongoServer(paths.db, sync_on_commit=True, die_with_parent=True)
            out.exit.callback(out.db.stop)
            out.db.start()
            os.environ["MONGODB_URI"] = out.db.uri
            out.lines.append(f"database: embedded SecantusDB at {out.db.uri} (journaled), data in "
                             f"{paths.db}, log {paths.db_log}")
        else:
            out.lines.append("database: MONGODB_URI (set by you)")
        out.lines.append("broker: the local RabbitMQ at 127.0.0.1:5672 (RABBITMQ_URL unset)"
                         if pre.settings.rabbitmq_url == LOCAL_BROKER else "broker: RABBITMQ_URL (set by you)")
        out.lines.append("sheet: none (GOOGLE_SHEET_ID unset): the same rows are the desk's CSV "
                         "download, GET /api/log.csv with the desk token" if pre.settings.google_sheet_id is None
                         else f"sheet: {pre.settings.google_sheet_id}")
        return out
    except BaseException:
        out.close()
        raise


def _demo_site(exit: contextlib.ExitStack, pre: Config, paths: Paths) -> str:
    """The `phoenix` stand-in (the MeetMe single-page app the shipped conf/sites/meetme.yaml reads
    with no edit: login modal on its www host, the app on its app host) with a demo login for every
    account and a few messages waiting; the variables that point the accounts at its two hosts are
    set (never real credentials). Returns its www URL."""
    served = DemoSite(paths.logs / "demo-site.log")
    exit.callback(served.stop)
    served.start()
    for account in pre.app.accounts:
        username, password = f"{account.id}@demo.replydesk.test", "demo-" + uuid.uuid4().hex
        served.add_account(username, password)
        os.environ[account.username_env] = username
        os.environ[account.password_env] = password
    for site in pre.sites.values():
        if site.url_env:
            os.environ[site.url_env] = served.www_url
        for host in site.hosts.values():
            if host.env:
                os.environ[host.env] = served.app_url
    os.environ.setdefault("MONGODB_DB", DEMO_DB)
    os.environ.setdefault("REPLYDESK_NAMESPACE", DEMO_NAMESPACE)
    for conversation, sender, text in DEMO_CONVERSATIONS:
        served.inject(conversation, sender, text)
    return served.www_url
