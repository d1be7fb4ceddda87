"""The gspread client: real Google with a credentials file, or any Sheets v4 server by URL.

gspread builds its URLs from constants that cannot be re-pointed; its supported hook is the
`http_client` class, so a subclass rewrites the Google prefixes to SHEETS_API_URL. With no
SHEETS_API_URL nothing is rewritten: real Google, reached only because the config says so.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gspread
from gspread.http_client import HTTPClient

from contracts.errors import PermanentError
from contracts.settings import Config

GOOGLE_PREFIXES = ("https://sheets.googleapis.com", "https://www.googleapis.com")
SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]


def redirecting_client(base_url: str) -> type[HTTPClient]:
    """An HTTPClient class that sends every Google API request to `base_url` instead."""
    base = base_url.rstrip("/")

    class RedirectingHTTPClient(HTTPClient):
        def request(self, method: str, endpoint: str, *args: Any, **kwargs: Any):
            for prefix in GOOGLE_PREFIXES:
                if endpoint.startswith(prefix):
                    endpoint = base + endpoint[len(prefix):]
                    break
            return super().request(method, endpoint, *args, **kwargs)

    return RedirectingHTTPClient


def load_credentials(path: Path):
    """Service-account or authorized-user (OAuth) credentials from a JSON file.

    Errors name the file and what is wrong, never its content (it holds a private key)."""
    from google.oauth2 import credentials as user_creds
    from google.oauth2 import service_account
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PermanentError(f"GOOGLE_CREDENTIALS_FILE: {path} is missing or unreadable "
                             f"({exc.strerror})") from None
    except ValueError:
        raise PermanentError(f"GOOGLE_CREDENTIALS_FILE: {path} is not valid JSON") from None
    kind = info.get("type") if isinstance(info, dict) else None
    try:
        if kind == "service_account":
            return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
        if kind == "authorized_user":
            return user_creds.Credentials.from_authorized_user_info(info, scopes=SCOPES)
    except (ValueError, KeyError) as exc:
        raise PermanentError(f"GOOGLE_CREDENTIALS_FILE: {path} is an incomplete {kind} file "
                             f"({type(exc).__name__})") from None
    raise PermanentError(f"GOOGLE_CREDENTIALS_FILE: {path} has type {kind!r}; expected "
                         "'service_account' or 'authorized_user'")


def open_client(config: Config) -> gspread.Client:
    """A gspread client for the configured Sheets API, with the configured timeouts."""
    s = config.settings
    if s.sheets_api_url:
        from google.auth.credentials import AnonymousCredentials
        client = gspread.Client(auth=AnonymousCredentials(),
                                http_client=redirecting_client(s.sheets_api_url))
    else:
        if s.google_credentials_file is None:
            raise PermanentError("GOOGLE_CREDENTIALS_FILE: required to reach Google Sheets")
        client = gspread.Client(auth=load_credentials(s.google_credentials_file))
    conf = config.app.sheets
    client.set_timeout((conf.connect_timeout_s, conf.timeout_s))
    return client
