"""`python -m supervisor doctor SITE`: every element of a site spec checked in one run, on the
real stand-in site (and on saved HTML), with a table naming what misses and a non-zero exit."""
from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import yaml

from contracts.settings import ROOT
from supervisor import doctor
from supervisor.capture import Masker, url_secrets
from supervisor.suggest import Candidate, generated, rank, relaxed, uses_generated
from supervisor.suggest_page import route_pattern
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


def test_generated_names_are_never_proposed_and_every_proposal_is_checked(make_config, artifacts_dir):
    """Build-tool class names (css-1x2y3z, sc-abc123, _3fGh2...) change with every release: the
    filter knows them from the names people write, and on a saved page whose reply box and send
    button carry only generated classes the proposals are their stable hooks, each matching."""
    for name in ("css-1x2y3z", "sc-abc123", "sc-bdVaJa", "_3fGh2", "Button_root__x7Yz1", "jsx-402817",
                 ":r4:", "ember1234", "x3fa9c01b", "emotion-0", "a1b2c3d4e5"):
        assert generated(name), name
    for name in ("chat-list", "btn-primary", "col-md-6", "h5", "media-heading", "chat-message-text",
                 "site-login-modal-email", "messagesChatsItem", "iPhone", "input-lg"):
        assert not generated(name), name
    assert uses_generated("div.css-1x2y3z > textarea") and uses_generated("#ember1234")
    assert not uses_generated("#chat-section ol.media-list.chat-list > li")
    assert relaxed("#chat-section ol.media-list.chat-list > li") == "* ol > li"
    assert relaxed("textarea.chat-compose-input") == "textarea" and relaxed(".chat-message-text") is None
    assert route_pattern("{app}/#chat/member/{conversation_id}/chat") == r"/\#chat/member/[^/?#]+/chat"
    ranked = rank([Candidate("textarea.sc-abc123", "stable class"), Candidate("textarea", "structure"),
                   Candidate("[data-testid='composer-input']", "test id"), Candidate("#reply", "id")])
    assert [c.selector for c in ranked] == ["#reply", "[data-testid='composer-input']", "textarea"]

    saved = artifacts_dir / "saved"
    saved.mkdir(exist_ok=True)
    (saved / "conversation.html").write_text(
        "<main><textarea class='css-1x2y3z'>draft</textarea><div class='sc-abc123 _3fGh2'>"
        "<form class='Composer_form__x7Yz1'><textarea class='css-9q8w7e' aria-label='Message' "
        "placeholder='Say something'></textarea><button class='sc-xyz789 css-4r5t6y' "
        "data-testid='composer-send' type='submit'>Send</button></form></div>"
        "<div role='log' class='css-0a1b2c'>"
        + "".join(f"<div class='sc-m{i}x9 css-77aa{i}' data-testid='msg' data-author='other'><b class='_a1{i}'>Ann</b>"
                  f"<p class='css-t{i}x1'>{text}</p><span data-testid='clock'>10:0{i}</span></div>"
                  for i, text in enumerate(["first words", "a reply we did not name", "last words"]))
        + "</div></main>")
    spec = {**yaml.safe_load((ROOT / "standins" / "sites" / "aria.yaml").read_text()), "name": "gen"}
    spec["elements"] = {**spec["elements"], "reply_box": {"selectors": ["form.compose textarea.chat-input"]},
                        "send_button": {"selectors": ["form.compose button.chat-send"]},
                        "message": {"selectors": ["div.chat-message"]},
                        "message_text": {"selectors": [".chat-message-text"]}}
    config = make_config(app={"browser": {"artifacts_dir": str(artifacts_dir)},
                              "accounts": [{"id": ACCOUNT, "site": "gen"}]},
                         sites={"gen": spec}, MEETME_URL="http://127.0.0.1:9")
    rows, _ = __import__("asyncio").run(doctor.run(config, "gen", html_dir=saved, out_dir=artifacts_dir / "gen",
                                                   texts=["first words", "last words"]))
    by = {r.element: r for r in rows if r.page == "conversation"}
    reply, send = by["reply_box"], by["send_button"]
    assert reply.found == 1 and send.found == 1
    assert [c.selector for c in reply.suggestions] == [  # the draft box outside the form is not it
        "textarea[placeholder='Say something']", "[aria-label='Message']", "textarea[aria-label='Message']"]
    assert send.suggestions[0].selector == "[data-testid='composer-send']"
    for c in reply.suggestions + send.suggestions:
        assert not uses_generated(c.selector) and c.count == 1, c
    # messages found by two known texts; the proposal also matches the one nobody named
    message, text = by["message"], by["message_text"]
    assert message.found == 2 and message.suggestions[0].selector == "[data-testid='msg']"
    assert {c.count for c in message.suggestions} == {3}
    assert text.suggestions and text.suggestions[0].selector == "p" and text.suggestions[0].count == 3
    assert not [c for c in message.suggestions + text.suggestions if uses_generated(c.selector)]


def test_masking_replaces_secrets_everywhere_and_private_texts_when_asked():
    """Pure: tokens in URLs, credentials and cookie values always; texts and names with --mask,
    in every spelling a saved file may have (HTML-escaped, JSON, URL-encoded)."""
    assert url_secrets("http://127.0.0.1:1/auth?t=AbC123xyz987QWE456&page=2") == ["AbC123xyz987QWE456"]
    assert url_secrets("https://u:hunter22@x.test/#access_token=abcd1234efgh5678&x=1") == \
        ["u", "hunter22", "abcd1234efgh5678"]
    assert url_secrets("http://x.test/chat?before=m12#chat/member/1000001/chat") == []
    m = Masker()
    m.secret("owner@example.com", "s3cret-pass")
    assert m.url("http://h/auth?t=AbC123xyz987QWE456") == "http://h/auth?t=***"
    m.known(["Tom & Jerry's \"plan\""], ["Zoë Adams"])
    page = ('<p title="Tom &amp; Jerry&#x27;s &quot;plan&quot;">Zoë Adams</p> owner%40example.com '
            '{"t": "Tom & Jerry\'s \\"plan\\""} AbC123xyz987QWE456 s3cret-pass')
    kept = m.apply(page)
    assert "Zoë Adams" in kept and "***" in kept and "s3cret-pass" not in kept and "AbC123" not in kept
    assert "owner%40example.com" not in kept
    m.private = True
    masked = m.apply(page)
    assert "Zoë" not in masked and "Tom" not in masked and "plan" not in masked, masked
    assert "masked-name-1" in masked and "masked-text-1" in masked
    assert m.hints() == {"texts": ["masked-text-1"], "names": ["masked-name-1"]}
    m.known(["ok"], ["Ann"])     # short ones: whole words between tags only
    assert m.apply('<annotation class="Ann">Ann said ok to Anna, book it</annotation>') == \
        '<annotation class="Ann">masked-name-2 said ok to Anna, book it</annotation>'


PHOENIX_TEXTS = ["Are we still on for Friday?", "I found a table near the window", "Bring the blue umbrella"]


def test_doctor_on_phoenix_three_renamed_elements_named_proposed_and_fixed_by_the_snippet(
        make_config, phoenix_site, artifacts_dir, capsys):
    """The shipped MeetMe spec on the stand-in of the real single-page app (login modal on the
    second host, push modal, hash routes, scroll paging) with three elements renamed (phoenix
    `rename`): the inbox list's class, the header name's class and the reply box (placeholder
    and form class). One run names the three misses and proposes for each a checked selector of
    the renamed element; the snippet pasted into a copy of the spec makes the doctor exit 0."""
    phoenix_site.faults(render_delay_ms=50, page_size=3)
    phoenix_site.inject("1000002", "Bob Stone", "See you at the gym")
    phoenix_site.inject("1000001", "Alice Wong", "An older one from Alice")
    for text in PHOENIX_TEXTS:
        phoenix_site.inject("1000001", "Alice Wong", text)
    phoenix_site.rename(inbox_list="conv-list", conversation_contact="contact-title",
                        reply_box="Write here\u2026", reply_form="composer")
    shipped = yaml.safe_load((ROOT / "conf" / "sites" / "meetme.yaml").read_text())
    # a copy of the shipped spec; the login typed at once (its 100 ms per key only slows the test)
    spec = {**shipped, "name": "phx", "login": {**shipped["login"], "type_delay_ms": 0}}

    def config(s):
        return make_config(app={"browser": {"artifacts_dir": str(artifacts_dir), "selector_timeout_s": 1},
                                "accounts": [{"id": ACCOUNT, "site": "phx", "navigations_per_minute": 10000}]},
                           sites={"phx": s}, MEETME_URL=phoenix_site.www_url, MEETME_APP_URL=phoenix_site.app_url)

    cap = artifacts_dir / "phoenix"
    code = doctor.main(config(spec), ["phx", "--capture", str(cap), "--mask", "--conversation", "1000001",
                                      "--name", "Alice Wong", "--text", PHOENIX_TEXTS[-1]])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "FAILED: inbox_item, conversation_contact, reply_box" in out, out
    pasted = _snippet(out)["elements"]
    assert {"inbox_item", "conversation_contact", "reply_box"} <= set(pasted), pasted
    hooks = {"inbox_item": "chat-item", "conversation_contact": "chat-contact-name", "reply_box": "chat-input"}
    for element, testid in hooks.items():   # the renamed element's stable hook, not a neighbour's
        assert pasted[element]["selectors"][0] == f"[data-testid='{testid}']", (element, pasted[element])
    manifest = json.loads((cap / "manifest.json").read_text())
    assert [p["name"] for p in manifest["pages"]] == ["start", "login", "inbox", "conversation", "older"]
    assert "site-login-modal-email" in (cap / "login.html").read_text()    # the modal was open
    private = [BASE_ENV["MEETME_USERNAME"], BASE_ENV["MEETME_PASSWORD"], *PHOENIX_TEXTS, "Alice Wong",
               "Bob Stone", "See you at the gym", "An older one from Alice"]
    for f in cap.iterdir():   # masked: shareable
        assert f.suffix == ".png" or not [s for s in private if s in f.read_text()], f.name
    assert "masked-name-1" in (cap / "conversation.aria.yml").read_text()
    # the inbox previews were known texts (found by, and masked as, texts): both contacts' ones
    previews = re.findall(r"paragraph: (\S+)", (cap / "inbox.aria.yml").read_text())
    assert len(previews) == 2 and all(p.startswith("masked-text-") for p in previews), previews
    fixed = {**spec, "elements": {**spec["elements"], **pasted}}
    assert doctor.main(config(fixed), ["phx", "--conversation", "1000001",
                                       "--out", str(artifacts_dir / "phoenix-fixed")]) == 0
    assert "all required elements match" in capsys.readouterr().out


def test_a_login_challenge_is_handed_to_a_person_and_their_login_from_elsewhere_is_used(
        make_config, chat_site, artifacts_dir, capsys, tmp_path, monkeypatch):
    """The site asks for a captcha: the doctor never solves it and says how a person finishes it
    (--headed here, or --state with a login made elsewhere, as `./run login --import` takes);
    with that login it checks every page, and the session cookie is in no saved file."""
    chat_site.faults(challenge="captcha")
    chat_site.inject("c1", "Alice Wong", "Hello there")
    cfg = make_config(app={"browser": {"artifacts_dir": str(artifacts_dir), "selector_timeout_s": 0.5},
                           "accounts": [{"id": ACCOUNT, "site": "classic", "navigations_per_minute": 10000}]},
                      MEETME_URL=chat_site.url)
    assert doctor.main(cfg, ["classic", "--out", str(artifacts_dir / "challenged")]) == 1
    out = capsys.readouterr().out
    assert "captcha" in out and "--headed" in out and "--state" in out and "FAILED: login" in out
    session = chat_site.session_cookie(BASE_ENV["MEETME_USERNAME"])
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"cookies": [{"name": session["cookie"], "value": session["value"],
                                              "domain": urlsplit(chat_site.url).hostname, "path": "/"}]}))
    cap = artifacts_dir / "with-state"
    assert doctor.main(cfg, ["classic", "--state", str(state), "--capture", str(cap)]) == 0
    assert "all required elements match" in capsys.readouterr().out
    assert chat_site.stats()["login_submissions"] == 1     # the first run's only: no retry
    assert not [f.name for f in cap.iterdir() if f.suffix != ".png" and session["value"] in f.read_text()]
    (tmp_path / "bad.json").write_text('{"cookies": "none"}')
    assert doctor.main(cfg, ["classic", "--state", str(tmp_path / "bad.json")]) == 2
    monkeypatch.delenv("DISPLAY", raising=False)
    assert doctor.main(cfg, ["classic", "--headed"]) == 2
