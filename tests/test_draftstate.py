"""The draft state machine: every move is checked (an illegal one is refused and changes nothing),
and no code outside the drafts repository writes a draft's status or spells a status by hand."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from contracts.draftstate import TRANSITIONS, DraftStatus, IllegalTransition, check
from tests.review_helpers import add_conversation

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = ROOT / "actors" / "store" / "drafts.py"
MACHINE = ROOT / "contracts" / "draftstate.py"


def test_every_status_has_its_moves_and_final_ones_have_none():
    assert set(TRANSITIONS) == set(DraftStatus)
    for final in (DraftStatus.SENT, DraftStatus.REJECTED, DraftStatus.SUPERSEDED):
        assert not TRANSITIONS[final]
    assert DraftStatus.PENDING == "pending_review"            # stored documents keep the strings
    check((DraftStatus.APPROVED, DraftStatus.EDITED), DraftStatus.SENDING)
    with pytest.raises(ValueError, match="unknown draft status 'archived'"):
        check(("archived",), DraftStatus.SENT)


def test_an_illegal_transition_is_refused_and_changes_nothing(store):
    draft = add_conversation(store, "c-illegal", ["hi"])
    did = draft["_id"]
    with pytest.raises(IllegalTransition, match="from 'pending_review' to 'sent'"):
        store.drafts.transition(did, DraftStatus.PENDING, DraftStatus.SENT)
    assert store.drafts.transition(did, "pending_review", "approved", decided_by="owner")["status"] == "approved"
    assert store.drafts.transition(did, "approved", "sending") is not None
    assert store.drafts.transition(did, "sending", "sent", site_message_id="m1") is not None
    for to in ("pending_review", "approved", "sending", "superseded"):
        with pytest.raises(IllegalTransition, match="from 'sent'"):
            store.drafts.transition(did, "sent", to)
    doc = store.drafts.get(did)
    assert doc["status"] == "sent" and doc["site_message_id"] == "m1"
    # a legal move from a status the draft is not in is a lost race, not an error: nothing moves
    assert store.drafts.transition(did, "pending_review", "rejected") is None
    assert store.drafts.get(did)["status"] == "sent"


def _sources() -> list[Path]:
    files = [p for d in ("actors", "supervisor", "contracts", "standins")
             for p in (ROOT / d).rglob("*.py")]
    return [p for p in files if p not in (REPOSITORY, MACHINE)]


# a write to the drafts collection other than through Drafts' methods
RAW_WRITE = re.compile(r"""(drafts\.coll|\[["']drafts["']\])\s*\.\s*(update_one|update_many|find_one_and_update|"""
                       r"""replace_one|find_one_and_replace|bulk_write)""")
# a draft status spelt as a bare string where a status is set or compared
STATUS = "|".join(s.value for s in DraftStatus)
BARE = re.compile(rf"""["']status["']\s*:\s*["']({STATUS})["']|status\S*\s*[!=]=\s*["']({STATUS})["']|"""
                  rf"""["']pending_review["']""")


def test_no_module_outside_the_state_machine_moves_a_draft():
    raw = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in _sources()
           for n, line in enumerate(p.read_text().splitlines(), 1) if RAW_WRITE.search(line)]
    assert not raw, "drafts are moved only by actors/store/drafts.py:\n" + "\n".join(raw)
    # the rule is real: the raw update the browser session used to make would be found
    assert RAW_WRITE.search('self.store.drafts.coll.update_one({"_id": d}, {"$set": {"status": "approved"}})')


def _other_statuses(p: Path) -> set[tuple[str, int]]:
    """Lines whose "status" is not a draft's: a notification's delivery, a message's sheet row."""
    marks = {"dispatcher.py": '"status": "sent", "sent_at": now', "events.py": '"status": "sent" if m.direction'}
    mark = marks.get(p.name)
    return {(p.name, n) for n, line in enumerate(p.read_text().splitlines(), 1) if mark and mark in line}


def test_draft_statuses_are_the_enum_not_bare_strings():
    bare = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in _sources()
            if p.parts[-2] not in ("standins",)
            for n, line in enumerate(p.read_text().splitlines(), 1)
            if BARE.search(line) and not line.lstrip().startswith("#")
            and (p.name, n) not in _other_statuses(p)]
    assert not bare, "use contracts.draftstate.DraftStatus:\n" + "\n".join(bare)
    assert BARE.search('if doc.get("status") == "sent":')
