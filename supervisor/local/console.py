"""`./run up`'s own log records on its console (in the foreground): short human lines between its
other lines ("12:01:02 warning: browser child still starting: ... (child: browser:meetme:main)"),
while the same records go, as JSON lines, to var/logs/up.jsonl. Detached, the console is a file
(var/logs/up.log) and stays JSON; so does a log directory named by REPLYDESK_LOG_DIR.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from contracts import telemetry

# what every LogRecord carries; anything else on a record came in `extra=`
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
MAX_EXTRA = 200   # characters of one extra value on the console (the JSON file has all of it)


class HumanFormatter(logging.Formatter):
    """`HH:MM:SS level: message (key: value, ...)`; an exception adds its last line (the type and
    message), never the traceback; every registered secret masked."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {record.levelname.lower()}: {record.getMessage()}"
        extras = [f"{k}: {_short(v)}" for k, v in vars(record).items()
                  if k not in _STANDARD and not k.startswith("_") and v is not None]
        if extras:
            line += f" ({', '.join(extras)})"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line += f": {type(exc).__name__}: {exc}"
        return telemetry.redact(line)


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= MAX_EXTRA else text[:MAX_EXTRA] + "..."


def use_human_console(json_file: Path, logger: logging.Logger | None = None) -> None:
    """Switch the console handler telemetry.setup put on the root logger (or `logger`) to human
    lines, and add `json_file` with its JSON format. Nothing changes when logging goes to files
    only (REPLYDESK_LOG_DIR) or was switched already."""
    root = logger or logging.getLogger()
    consoles = [h for h in root.handlers if isinstance(h, logging.StreamHandler)
                and not isinstance(h, logging.FileHandler)
                and isinstance(h.formatter, telemetry.JsonFormatter)]
    if not consoles:
        return
    console = consoles[0]
    json_file.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(json_file, encoding="utf-8")
    to_file.setFormatter(console.formatter)
    root.addHandler(to_file)
    console.setFormatter(HumanFormatter())
