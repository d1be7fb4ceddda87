"""`./run up` in the foreground: its own log records are short human lines on its console (the
start report's warnings among them), the same records JSON lines in var/logs/up.jsonl."""
from __future__ import annotations

import io
import json
import logging
import re

from contracts import telemetry
from supervisor.local.console import HumanFormatter, use_human_console

LINE = re.compile(r"^\d\d:\d\d:\d\d (warning|error|info|critical): ")


def _record(msg: str, level: int = logging.WARNING, exc_info=None, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("replydesk.runner", level, __file__, 1, msg, (), exc_info)
    rec.__dict__.update(extra)
    return rec


def test_a_record_is_one_short_human_line_with_its_extras():
    line = HumanFormatter().format(_record("browser child still starting: logging in",
                                           child="browser:meetme:main", state="starting"))
    assert LINE.match(line), line
    assert line.endswith("warning: browser child still starting: logging in "
                         "(child: browser:meetme:main, state: starting)")
    assert "{" not in line and "\n" not in line


def test_an_exception_adds_its_last_line_not_the_traceback_and_secrets_are_masked():
    telemetry.register_secret("hunter2-secret-77")
    try:
        raise ValueError("refused hunter2-secret-77")
    except ValueError as exc:
        line = HumanFormatter().format(_record("up failed", logging.ERROR,
                                               (type(exc), exc, exc.__traceback__)))
    assert line.endswith("error: up failed: ValueError: refused **********"), line
    assert "Traceback" not in line and "hunter2" not in line


def test_up_console_handler_shows_human_lines_and_the_file_keeps_json(tmp_path):
    """What up does after telemetry.setup: the stderr handler's JSON becomes human lines, the
    JSON goes to the file; a second call changes nothing."""
    from supervisor.runner import report_start
    logger = logging.getLogger("replydesk")       # report_start logs on replydesk.runner
    saved = (logger.handlers[:], logger.level, logger.propagate)
    console = io.StringIO()
    handler = logging.StreamHandler(console)
    handler.setFormatter(telemetry.JsonFormatter("up"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        use_human_console(tmp_path / "logs" / "up.jsonl", logger)
        use_human_console(tmp_path / "logs" / "up.jsonl", logger)
        assert len(logger.handlers) == 2
        report_start([{"name": "browser:meetme:a", "kind": "browser", "state": "starting",
                       "last_error": None}])
    finally:
        for h in logger.handlers[1:]:
            h.close()
        logger.handlers[:], logger.level, logger.propagate = saved
    shown = console.getvalue().splitlines()
    assert len(shown) == 1 and LINE.match(shown[0]), shown
    assert "warning: browser child still starting" in shown[0]
    assert "(child: browser:meetme:a, state: starting)" in shown[0]
    [logged] = [json.loads(x) for x in (tmp_path / "logs" / "up.jsonl").read_text().splitlines()]
    assert logged["level"] == "warning" and logged["child"] == "browser:meetme:a"
    assert logged["msg"].startswith("browser child still starting") and logged["service"] == "up"


def test_logs_go_only_to_files_nothing_changes(tmp_path):
    """REPLYDESK_LOG_DIR (or detached: the console is a file): JSON stays, no second file."""
    logger = logging.getLogger("replydesk.test_up_console")
    to_file = logging.FileHandler(tmp_path / "up.jsonl", encoding="utf-8")
    to_file.setFormatter(telemetry.JsonFormatter("up"))
    logger.addHandler(to_file)
    try:
        use_human_console(tmp_path / "other.jsonl", logger)
        assert logger.handlers == [to_file] and isinstance(to_file.formatter, telemetry.JsonFormatter)
    finally:
        logger.removeHandler(to_file)
        to_file.close()
    assert not (tmp_path / "other.jsonl").exists()
