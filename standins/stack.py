"""All stand-ins at once (chat site, AI endpoint, Sheets fake, MongoDB-wire server when
MONGODB_URI is unset), for the demo, the job-submission test and the node-loss test."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from standins import aiserver, chatsite, sheetsfake
from standins.mongo import MongoServer
from standins.serve import ServedApp


def wait_for(predicate, timeout: float = 60.0, what: str = "condition", interval: float = 0.1,
             tolerate: tuple[type[BaseException], ...] = ()):
    """Poll `predicate` until it returns something truthy (returned); TimeoutError after `timeout`.
    An exception in `tolerate` (a server restarting under a chaos run) counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except tolerate:
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Stack:
    site: chatsite.ChatSiteAdmin
    ai: aiserver.AdminClient | None      # None when a real AI endpoint is used
    sheets: sheetsfake.SheetsAdmin
    env: dict[str, str]
    _exit: contextlib.ExitStack = field(repr=False, default_factory=contextlib.ExitStack)

    def close(self) -> None:
        self._exit.close()

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def stand_in_config(folder: Path, site: str = "classic") -> Path:
    """conf/replydesk.yaml with its accounts on `site` (default: the chat-site stand-in's
    `classic` theme; the shipped `meetme` spec is the real site's), beside every site spec
    (conf/sites and standins/sites); returns the config file to load."""
    from contracts.settings import ROOT
    (folder / "sites").mkdir(parents=True, exist_ok=True)
    for spec in [*(ROOT / "standins" / "sites").glob("*.yaml"), *(ROOT / "conf" / "sites").glob("*.yaml")]:
        shutil.copy(spec, folder / "sites" / spec.name)
    base = yaml.safe_load((ROOT / "conf" / "replydesk.yaml").read_text())
    base["accounts"] = [{**a, "site": site} for a in base["accounts"]]
    path = folder / "replydesk.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def start_stack(namespace: str | None = None, *, host: str = "127.0.0.1",
                external_ai: bool = False, theme: str = "classic") -> Stack:
    """Start every stand-in on a free port; `env` holds the variables that point replydesk at
    them (embedded demo credentials, never real ones). `theme`: the chat site's markup, read by
    its own spec (`classic`: the chat-site stand-in, standins/sites/classic.yaml; `phoenix`: the
    MeetMe-shaped single-page app on two hosts, read by the shipped conf/sites/meetme.yaml). With `external_ai` and AI_API_URL set in
    the environment, no AI stand-in is started and AI_API_URL / AI_API_KEY / AI_MODEL are kept
    (a key is optional: local servers such as Ollama take any)."""
    ns = namespace or "demo" + uuid.uuid4().hex[:6]
    username, password = "owner@demo.replydesk.test", "demo-" + uuid.uuid4().hex
    api_key, sheet_id = "sk-demo-" + uuid.uuid4().hex, "replydesk-demo-sheet"
    ex = contextlib.ExitStack()
    try:
        mongo_uri = os.environ.get("MONGODB_URI")
        if not mongo_uri:
            mongo_uri = ex.enter_context(MongoServer()).uri
        if theme == "phoenix":
            from standins.phoenix import ServedPhoenix
            phoenix = ex.enter_context(ServedPhoenix())
            site_admin, site_env = phoenix.admin(), {"MEETME_URL": phoenix.www_url,
                                                     "MEETME_APP_URL": phoenix.app_url}
        else:
            site = ex.enter_context(ServedApp(chatsite.make_app(theme=theme), host=host))
            site_admin, site_env = chatsite.ChatSiteAdmin(site.url), {"MEETME_URL": site.url}
        real_ai = external_ai and bool(os.environ.get("AI_API_URL"))
        if real_ai:
            ai_url, api_key = os.environ["AI_API_URL"], os.environ.get("AI_API_KEY") or "sk-none"
        else:
            ai_url = ex.enter_context(ServedApp(aiserver.make_app(api_key=api_key), host=host)).url
        sheets = ex.enter_context(ServedApp(sheetsfake.make_app(), host=host))
        site_admin.add_account(username, password)
        sheets_admin = sheetsfake.SheetsAdmin(sheets.url, sheet_id)
        sheets_admin.create()
        conf = Path(tempfile.mkdtemp(prefix=f"replydesk-{ns}-conf-"))
        ex.callback(shutil.rmtree, conf, True)
        env = {
            "REPLYDESK_CONFIG": str(stand_in_config(conf, "meetme" if theme == "phoenix" else theme)),
            "RABBITMQ_URL": os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
            "MONGODB_URI": mongo_uri, "MONGODB_DB": ns, "REPLYDESK_NAMESPACE": ns,
            "GOOGLE_SHEET_ID": sheet_id, "SHEETS_API_URL": sheets.url,
            "MEETME_USERNAME": username, "MEETME_PASSWORD": password, **site_env,
            "AI_API_KEY": api_key, "AI_API_URL": ai_url, "REVIEW_TOKEN": "review-" + uuid.uuid4().hex,
        }
        return Stack(site=site_admin, ai=None if real_ai else aiserver.AdminClient(ai_url, api_key),
                     sheets=sheets_admin,
                     env=env, _exit=ex)
    except BaseException:
        ex.close()
        raise
