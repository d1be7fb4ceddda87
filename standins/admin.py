"""The blocking JSON client every stand-in's /_admin API shares (tests, demo, benchmarks)."""
from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any


class AdminClient:
    """POST/GET JSON under `{url}/_admin`; `.url` is the stand-in's base URL."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        req = urllib.request.Request(f"{self.url}/_admin{path}{query}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
