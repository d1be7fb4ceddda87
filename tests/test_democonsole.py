"""The quiet demo console's parts: the human line of each notification the demo receives, and
where a process's JSON logs go (a file per service with REPLYDESK_LOG_DIR, else stderr as before:
what `--verbose` shows). The whole console is checked by tests/test_demo_serve.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from actors.notify.messages import needs_login_note
from standins.democonsole import Console, banner, note_line

ROOT = Path(__file__).resolve().parents[1]
LOG_ONE = ("from contracts import telemetry; import logging; telemetry.setup('browser:acct-1'); "
           "logging.getLogger('x').info('hello', extra={'draft_id': 'd1'})")


def test_each_notification_and_reply_is_one_human_line():
    login = needs_login_note({"event_id": "e1", "account_id": "meetme-main", "child": "browser:meetme-main",
                              "error": "a captcha is shown"})
    out: list[str] = []
    console = Console({"c-bob": "Bob"}, out.append)
    console.poll([{"title": "New draft to review: Alice on meetme-main",
                   "message": "Account: meetme-main\nDraft: See you at 8?\nReview it: http://x/#draft=d1"},
                  {"title": login.title, "message": login.body},
                  {"title": "3 new drafts to review", "message": "..."}],
                 [{"conversation_id": "c-bob", "text": "Thanks Bob!"}, {"conversation_id": "c-zed", "text": "Hi"}])
    assert out == ["new draft for Alice: 'See you at 8?'",
                   "needs login: Account meetme-main: The browser session browser:meetme-main cannot log "
                   "in: a captcha is shown",
                   "3 new drafts to review",
                   "reply sent to Bob (c-bob): 'Thanks Bob!'",
                   "reply sent to c-zed: 'Hi'"]
    console.poll([], [])                                    # nothing new: nothing printed again
    assert len(out) == 5
    gone = {"_id": "d9", "conversation_id": "c-bob", "superseded_reason": "1 newer message arrived before it was sent"}
    console.poll([], [], [gone])
    console.poll([], [], [gone])
    assert out[5:] == ["reply to Bob (c-bob) not sent: 1 newer message arrived before it was sent"]
    assert note_line({"title": "replydesk: ai:0 failed"}) == "notification: replydesk: ai:0 failed"
    lines = banner("http://127.0.0.1:1", "tok", "http://127.0.0.1:2", Path("/run/logs"))
    assert "review desk: http://127.0.0.1:1/#token=tok" in lines
    assert any(x.startswith("logs: /run/logs/") for x in lines)


def test_logs_go_to_a_file_per_service_with_a_log_dir_else_to_stderr(tmp_path):
    quiet = subprocess.run([sys.executable, "-c", LOG_ONE], cwd=ROOT, capture_output=True, text=True,
                           timeout=60, env={"PATH": "/usr/bin:/bin", "REPLYDESK_LOG_DIR": str(tmp_path)})
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""
    record = json.loads((tmp_path / "browser_acct-1.jsonl").read_text())
    assert record["msg"] == "hello" and record["draft_id"] == "d1" and record["service"] == "browser:acct-1"
    verbose = subprocess.run([sys.executable, "-c", LOG_ONE], cwd=ROOT, capture_output=True, text=True,
                             timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert json.loads(verbose.stderr.strip())["msg"] == "hello"
