"""`python -m supervisor doctor SITE`: every element of a site spec checked in one run, on the
real stand-in site (and on saved HTML), with a table naming what misses and a non-zero exit."""
from __future__ import annotations

import yaml

from contracts.settings import ROOT
from supervisor import doctor

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
