"""actors/store/aifailures.py: the record a person sees when the AI could not draft."""
from __future__ import annotations

import pytest


def test_record_get_clear_and_list(store):
    fails = store.ai_failures
    assert fails.get("acct", "c1") is None
    fails.record("acct", "c1", "AI answer invalid after a corrective retry: truncated",
                 last_message_id="acct:c1:3", seq=3, message_ids=["acct:c1:3"], model="m", attempts=2)
    fails.record("acct", "c1", "still truncated", last_message_id="acct:c1:3", seq=3)
    fails.record("other", "c9", "does not fit", kind="context", seq=1)
    got = fails.get("acct", "c1")
    assert (got["reason"], got["kind"], got["count"], got["seq"]) == ("still truncated",
                                                                      "invalid_answer", 2, 3)
    assert got["first_at"] <= got["at"]
    assert [d["conversation_id"] for d in fails.list()] == ["c9", "c1"]      # newest first
    assert [d["conversation_id"] for d in fails.list(account_ids=["acct"])] == ["c1"]
    assert not fails.clear("acct", "c1", upto_seq=2)     # a draft of older messages: it stays
    assert fails.clear("acct", "c1", upto_seq=3) and fails.get("acct", "c1") is None
    assert fails.clear("other", "c9") and fails.count() == 0
    with pytest.raises(ValueError, match="ai failure kind 'bogus'"):
        fails.record("acct", "c1", "x", kind="bogus")
