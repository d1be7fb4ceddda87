"""`python -m supervisor doctor SITE`: every element of a site spec checked in one run, on the
real stand-in site (and on saved HTML), with a table naming what misses and a non-zero exit."""
from __future__ import annotations

import json

import yaml

from contracts.settings import ROOT
from supervisor import doctor
from supervisor.suggest import uses_generated
from tests.fixtures.infra import BASE_ENV

ACCOUNT = "owner-main"


def _config(make_config, chat_site, artifacts_dir, spec=None):
    return make_config(
        app={"browser": {"artifacts_dir": str(artifacts_dir), "selector_timeout_s": 0.5},
             "accounts": [{"id": ACCOUNT, "site": "aria", "navigations_per_minute": 10000}]},
        sites={"aria": spec} if spec else None, MEETME_URL=chat_site.url)


def test_doctor_names_every_broken_element_at_once_then_passes_when_fixed(make_config, chat_site,
                                                                         artifacts_dir, capsys):
    chat_site.theme("aria")
    chat_site.faults(page_size=3)
    for i in range(5):
        chat_site.inject("c1", "Alice", f"message {i}")
    good = yaml.safe_load((ROOT / "standins" / "sites" / "aria.yaml").read_text())
    broken = {**good, "elements": {**good["elements"],
                                   "message_sender": {"selectors": [".author"]},   # three breaks
                                   "reply_box": {"selectors": ["textarea"]},
                                   "send_button": {"selectors": ["button.send"]}}}
    out = artifacts_dir / "doctor-broken"
    code = doctor.main(_config(make_config, chat_site, artifacts_dir, broken), ["aria", "--out", str(out)])
    table = capsys.readouterr().out
    assert code == 1
    assert "FAILED: message_sender, reply_box, send_button" in table
    assert ".author" in table and "button.send" in table
    for page in ("login", "inbox", "conversation"):
        assert (out / f"{page}.png").stat().st_size > 0 and (out / f"{page}.html").is_file()
    # the same saved pages, offline: the same verdict, no site needed
    assert doctor.main(_config(make_config, chat_site, artifacts_dir, broken),
                       ["aria", "--html", str(out), "--out", str(artifacts_dir / "offline")]) == 1
    assert "FAILED: message_sender, reply_box, send_button" in capsys.readouterr().out
    # the operator fixes the YAML: every element matches, samples show what would be read
    rows, _ = __import__("asyncio").run(doctor.run(_config(make_config, chat_site, artifacts_dir), "aria",
                                                   out_dir=artifacts_dir / "fixed"))
    by = {r.element: r for r in rows}
    assert not [r.element for r in rows if r.failed]
    assert by["message"].count == 3 and by["message_sender"].samples == ["Alice"] * 3
    assert by["message_text"].samples[-1] == "message 4" and by["message_direction"].samples[-1] == "in"
    assert by["message_time"].samples[-1].endswith("Z") and by["older_messages"].count == 1
    assert doctor.main(_config(make_config, chat_site, artifacts_dir), ["aria"]) == 0
    assert "all required elements match" in capsys.readouterr().out


# ---------------------------------------------------------------- a first contact: capture + suggestions

def _classic_spec() -> dict:
    """The classic theme's own spec (standins/sites/classic.yaml once the shipped meetme.yaml
    describes the real site; conf/sites/meetme.yaml before)."""
    for path in (ROOT / "standins" / "sites" / "classic.yaml", ROOT / "conf" / "sites" / "meetme.yaml"):
        if path.is_file():
            spec = yaml.safe_load(path.read_text())
            if "inbox_item" in spec["elements"] and "li.chat-list-item" in spec["elements"]["inbox_item"]["selectors"]:
                return spec
    raise AssertionError("no spec of the classic theme found")


def _snippet(out: str) -> dict:
    """The YAML the doctor printed to paste into the spec."""
    text = out.split("Paste into the site spec (each replaces that element's line):\n", 1)[1]
    return yaml.safe_load(text.split("\n\n", 1)[0])


CLASSIC_TEXTS = ["Are you coming on Friday?", "I booked the table at 8", "Bring the blue umbrella"]


def test_doctor_first_contact_renamed_classes_masked_capture_and_pasted_suggestions(
        make_config, chat_site, artifacts_dir, capsys):
    """The classic theme with its ids and classes renamed: a spec that knew only them misses three
    elements (a list item, the reply box, a message field); one run names the three, proposes a
    checked selector for each, saves every page masked; the snippet pasted makes it pass."""
    chat_site.faults(renamed_classes=True, page_size=3)
    chat_site.inject("c2", "Bob Stone", "See you at the gym")
    chat_site.inject("c1", "Alice Wong", "An older one from Alice")
    for text in CLASSIC_TEXTS:
        chat_site.inject("c1", "Alice Wong", text)
    spec = {**_classic_spec(), "name": "renamed"}
    spec["elements"] = {**spec["elements"], "inbox_item": {"selectors": ["li.chat-list-item"]},
                        "reply_box": {"selectors": ["textarea.chat-compose-input"]},
                        "message_text": {"selectors": [".chat-message-text"]}}

    def config(s):
        return make_config(app={"browser": {"artifacts_dir": str(artifacts_dir), "selector_timeout_s": 0.5},
                                "accounts": [{"id": ACCOUNT, "site": "renamed", "navigations_per_minute": 10000}]},
                           sites={"renamed": s}, MEETME_URL=chat_site.url)

    cap = artifacts_dir / "capture"
    code = doctor.main(config(spec), ["renamed", "--capture", str(cap), "--mask", "--conversation", "c1",
                                      "--text", CLASSIC_TEXTS[0], "--text", CLASSIC_TEXTS[2]])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED: inbox_item, message_text, reply_box" in out
    pasted = _snippet(out)["elements"]
    assert set(pasted) == {"inbox_item", "message_text", "reply_box"}
    for element, entry in pasted.items():
        best = entry["selectors"][0]
        assert best not in spec["elements"][element]["selectors"] and not uses_generated(best), (element, best)
        assert entry["selectors"][1:] == spec["elements"][element]["selectors"]  # old ones kept
    # every page saved: HTML, screenshot, ARIA snapshot, listed in the manifest with its misses
    manifest = json.loads((cap / "manifest.json").read_text())
    assert [p["name"] for p in manifest["pages"]] == ["start", "login", "inbox", "conversation", "older"]
    by_page = {p["name"]: p for p in manifest["pages"]}
    assert by_page["inbox"]["missed"][0] == "inbox_item" and "reply_box" in by_page["conversation"]["missed"]
    for p in manifest["pages"]:
        assert (cap / p["files"]["png"]).stat().st_size > 0
        assert (cap / p["files"]["html"]).is_file() and (cap / p["files"]["aria"]).read_text().strip()
    # masked: no credential, cookie or token, no message text, no name in any saved file
    secrets = [BASE_ENV["MEETME_USERNAME"], BASE_ENV["MEETME_PASSWORD"], *CLASSIC_TEXTS,
               "See you at the gym", "An older one from Alice", "Alice", "Bob Stone"]
    for f in cap.iterdir():
        if f.suffix in (".html", ".yml", ".json"):
            text = f.read_text()
            assert not [s for s in secrets if s in text], f.name
    assert "masked-text-1" in (cap / "conversation.html").read_text()
    # the saved pages alone, offline: the same three misses and the same proposals
    assert doctor.main(config(spec), ["renamed", "--html", str(cap), "--out", str(artifacts_dir / "offline")]) == 1
    offline = capsys.readouterr().out
    assert "FAILED: inbox_item, message_text, reply_box" in offline
    assert _snippet(offline)["elements"] == pasted
    # the operator pastes the snippet into the spec: everything matches
    fixed = {**spec, "elements": {**spec["elements"], **pasted}}
    assert doctor.main(config(fixed), ["renamed", "--conversation", "c1", "--out", str(artifacts_dir / "fixed")]) == 0
    assert "all required elements match" in capsys.readouterr().out
