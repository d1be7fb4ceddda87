"""Where `./run up` keeps what lasts across runs: everything under one directory, `var/` of the
checkout unless REPLYDESK_VAR names another (tests give each run its own)."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from contracts.settings import ROOT


@dataclass(frozen=True)
class Paths:
    var: Path

    @classmethod
    def default(cls) -> "Paths":
        var = Path(os.environ.get("REPLYDESK_VAR") or ROOT / "var")
        return cls(var if var.is_absolute() else ROOT / var)

    @property
    def db(self) -> Path:              # the embedded SecantusDB's storage (its log beside it)
        return self.var / "db"

    @property
    def db_log(self) -> Path:
        return self.var / "db.log"

    @property
    def run(self) -> Path:             # pid, lock and status of the running `up`
        return self.var / "run"

    @property
    def pid_file(self) -> Path:
        return self.run / "up.pid"

    @property
    def lock_file(self) -> Path:
        return self.run / "up.lock"

    @property
    def status_file(self) -> Path:
        return self.run / "status.json"

    @property
    def logs(self) -> Path:
        return self.var / "logs"

    @property
    def log_file(self) -> Path:        # `up --detach` writes its console here
        return self.logs / "up.log"

    @property
    def json_log(self) -> Path:        # `up` in the foreground: its own log records as JSON lines
        return self.logs / "up.jsonl"

    @property
    def token_file(self) -> Path:
        return self.var / "review_token"

    def ensure(self) -> "Paths":
        for d in (self.var, self.run, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        return self

    def review_token(self) -> tuple[str, bool]:
        """The desk's token: the stored one, else a new one stored with mode 600. (token, new)."""
        f = self.token_file
        if f.is_file():
            token = f.read_text(encoding="utf-8").strip()
            if token:
                return token, False
        token = "rd-" + secrets.token_urlsafe(24)
        fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(token + "\n")
        os.chmod(f, 0o600)
        return token, True
