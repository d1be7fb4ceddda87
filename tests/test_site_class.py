"""A site the YAML cannot describe: `adapter: module:Class` in its spec makes the session build that
Python class (tests/memsite.py) instead of the YAML-driven adapter; a value that cannot be used
stops the start with an error naming the site file and the field."""
from __future__ import annotations

import pytest

from actors.browser.site import check_adapters
from contracts.events import DraftApproved
from contracts.ids import draft_id
from contracts.settings import ConfigError
from tests.memsite import WORLD, MemorySite

ACCOUNT = "meetme-main"


def _config(make_config, adapter: str):
    return make_config(app={"accounts": [{"id": ACCOUNT, "site": "memsite", "navigations_per_minute": 1000,
                                          "sends_per_minute": 100}]},
                       sites={"memsite": {"name": "memsite", "base_url": "https://memsite.invalid",
                                          "adapter": adapter}})


@pytest.mark.full
async def test_the_session_reads_and_sends_through_a_python_site_class(make_config, store):
    from actors.browser.session import AccountSession
    WORLD.reset()
    WORLD.inject("c1", "Alice", "are you there?")
    s = AccountSession(_config(make_config, "tests.memsite:MemorySite"), ACCOUNT)
    try:
        await s.start()
        site = s.life.adapter
        assert isinstance(site, MemorySite) and site.logins == 1
        assert store.accounts.storage_state(ACCOUNT) is not None   # its login state was stored
        assert len((await s.poll())["new"]) == 1
        [msg] = store.messages.conversation(ACCOUNT, "c1")
        assert (msg.sender, msg.text, msg.direction) == ("Alice", "are you there?", "in")

        did = draft_id(ACCOUNT, "c1", msg.message_id)
        store.drafts.insert({"_id": did, "account_id": ACCOUNT, "conversation_id": "c1",
                             "message_ids": [msg.message_id], "text": "yes, here"})
        store.drafts.transition(did, "pending_review", "approved")
        event = DraftApproved.make(draft_id=did, account_id=ACCOUNT, conversation_id="c1",
                                   text="yes, here", approved_by="owner").model_dump(mode="json")
        assert (await s.send(event, {}))["status"] == "sent"
        assert (await s.send(event, {}))["status"] == "already_sent"
        assert WORLD.sent == [("c1", "yes, here")]
        assert store.drafts.get(did)["status"] == "sent"
        assert store.outbox.coll.count_documents({"routing_key": "reply.sent"}) == 1
        assert (await s.poll())["new"] == []   # our reply is stored: nothing new
        assert [m.direction for m in store.messages.conversation(ACCOUNT, "c1")] == ["in", "out"]
    finally:
        await s.stop()
    assert site.closed


def test_a_value_without_a_colon_is_refused_naming_the_file_and_field(make_config):
    with pytest.raises(ConfigError) as err:
        _config(make_config, "tests.memsite")
    assert "sites/memsite.yaml" in str(err.value) and "adapter:" in str(err.value)
    assert "must be module:Class" in str(err.value)


@pytest.mark.parametrize("value,problem", [
    ("tests.no_such_module:Site", "module 'tests.no_such_module' cannot be imported (ModuleNotFoundError"),
    ("tests.memsite:NoSuchSite", "module 'tests.memsite' has no class 'NoSuchSite'"),
    ("tests.memsite:WORLD", "module 'tests.memsite' has no class 'WORLD'"),
    ("tests.memsite:HalfSite", "class 'HalfSite' does not satisfy the Site protocol"),
])
def test_an_unusable_adapter_stops_the_start(make_config, value, problem):
    from actors.browser.session import AccountSession
    config = _config(make_config, value)
    for start in (lambda: check_adapters(config), lambda: AccountSession(config, ACCOUNT)):
        with pytest.raises(ConfigError) as err:
            start()
        assert str(err.value).startswith(f"config error: sites/memsite.yaml adapter: {value!r}: ")
        assert problem in str(err.value)


def test_a_class_missing_methods_is_told_which(make_config):
    with pytest.raises(ConfigError) as err:
        check_adapters(_config(make_config, "tests.memsite:HalfSite"))
    assert "missing ensure_logged_in, login, on_inbox" in str(err.value)
    assert "send" in str(err.value) and "async/sync not as the protocol says: inbox" in str(err.value)


def test_the_yaml_driven_adapter_and_the_example_satisfy_the_protocol():
    from actors.browser.adapter import SpecAdapter
    from actors.browser.site import adapter_class
    from contracts.sitespec import SiteConf
    for value, cls in (("actors.browser.adapter:SpecAdapter", SpecAdapter), ("tests.memsite:MemorySite", MemorySite)):
        spec = SiteConf.model_validate({"name": "memsite", "base_url": "https://memsite.invalid", "adapter": value})
        assert adapter_class("memsite", spec) is cls
