"""`./run demo --serve` as a person uses it: a subprocess (what `./run demo --serve` runs after
setup), the desk driven in Chromium (approve one draft), the reply seen once on the demo chat
site's contact page, then SIGINT and a clean shutdown with no process of it left behind. The
console is quiet: a banner, one human line per event, the actors' JSON logs in files."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.helpers import wait_for
from tests.review_helpers import chromium

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(300)


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                parents[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out.update(kids)
        todo.extend(kids)
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for p in pids:
        try:
            if (Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z":
                alive.add(p)
        except OSError:
            pass
    return alive


def _approve_alice(page) -> str:
    """Approve Alice's open draft; the chatter may write to her meanwhile, which supersedes it
    (refused with the newer draft offered, or not sent at the click): then approve the new one."""
    for _ in range(6):
        item = page.locator(".draft-item").filter(has_text="c-alice")
        expect(item).to_have_count(1, timeout=90_000)       # one open draft per conversation
        item.click()
        expect(page.locator("#draft-text")).not_to_have_value("")
        page.locator("#approve").click()
        status = page.locator("#draft-status")
        expect(status).to_have_attribute("data-status", re.compile("^(sent|superseded)$"), timeout=60_000)
        if status.get_attribute("data-status") == "sent":
            return page.locator("#draft-text").input_value()   # the text of the draft that was sent
        page.locator("#refresh").click()
        expect(page.locator(".draft-item").filter(has_text="c-alice")).to_have_count(1, timeout=90_000)
    pytest.fail("every draft for Alice was superseded by newer chatter before it could be sent")


def test_demo_serve_lets_a_person_approve_and_see_the_reply(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB", "REPLYDESK", "RAY_"))}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "standins.demo", "--serve", "--chatter", "3",
                             "--undo", "1"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    family: set[int] = set()
    try:
        desk_line = wait_for(lambda: next((x for x in lines if x.startswith("review desk: ")), None)
                             or (proc.poll() is not None and pytest.fail("".join(lines))), 150, "the desk URL")
        desk_link = desk_line.split(": ", 1)[1].strip()
        site = next(x for x in lines if x.startswith("demo chat site")).rsplit(": ", 1)[1].strip()
        assert re.match(r"http://127\.0\.0\.1:\d+/#token=review-\w+$", desk_link)
        family = _descendants(proc.pid)
        with chromium() as browser:
            page = browser.new_page()
            page.goto(desk_link)
            expect(page.locator("#reviewer")).to_have_text("owner")
            text = _approve_alice(page)
            contact = browser.new_page()
            contact.goto(site.rsplit("/", 1)[0] + "/contact/c-alice")
            reply = contact.locator("li.reply")
            expect(reply).to_have_count(1, timeout=60_000)
            expect(reply).to_contain_text(text)
            contact.wait_for_timeout(2500)                   # the page re-reads every second
            expect(reply).to_have_count(1)                   # sent once
        wait_for(lambda: any(x.startswith("new draft for ") for x in lines), 30, "a new draft line")
        wait_for(lambda: any(x.startswith("new message from") for x in lines), 30, "chatter")
        family |= _descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(120)
        except subprocess.TimeoutExpired:   # say where the shutdown stopped (its steps are printed)
            pytest.fail("the demo did not stop within 120 s of Ctrl-C; its last lines:\n"
                        + "".join(lines[-30:]))
        assert code == 0, "".join(lines[-30:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    reader.join(10)
    out = "".join(lines)
    assert "shut down cleanly; stray Chromium processes: 0" in out, out[-3000:]
    assert "reply sent to Alice (c-alice)" in out
    logs = Path(next(x for x in lines if x.startswith("logs: ")).split(" ", 2)[1].rstrip("/"))
    assert logs.is_relative_to(tmp_path) and {"review.jsonl", "router.jsonl"} <= {p.name for p in logs.iterdir()}
    assert any(json.loads(x)["msg"] == "draft approved" for x in (logs / "review.jsonl").read_text().splitlines())
    assert not [x for x in lines if x.lstrip().startswith("{")], "JSON log lines on the quiet console"
    assert re.search(r"^new draft for Alice: '.+'$", out, re.M), out[-3000:]
    deadline = time.monotonic() + 30
    while _alive(family) and time.monotonic() < deadline:   # Ray's processes end as ray.shutdown() returns
        time.sleep(0.5)
    assert not _alive(family), {p: Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in _alive(family)}
