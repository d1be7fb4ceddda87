"""The adapter's errors (re-exported by adapter.py, where callers have always imported them)."""
from __future__ import annotations

from contracts.errors import PermanentError


class SiteUnavailable(Exception):
    """The site answered 5xx (retried)."""


class LoggedOut(Exception):
    """A page showed the login form: the session expired or was revoked."""


class LoginFailed(PermanentError):
    """The site rejected the credentials: retrying will not help."""


class NeedsLogin(PermanentError):
    """The site put a challenge in front of the login (captcha, 2FA, device check): a person must
    complete it (`./run login ACCOUNT`); replydesk never solves one nor retries the form."""

    def __init__(self, message: str, site: str = "", url: str = "", screenshot: str | None = None,
                 html: str | None = None):
        super().__init__(message)
        self.site, self.url, self.screenshot, self.html = site, url, screenshot, html

    def __reduce__(self):
        return (NeedsLogin, (str(self), self.site, self.url, self.screenshot, self.html))


class SendUnproven(PermanentError):
    """Whether an earlier attempt of this send went through cannot be proven from the page: not
    sending again; a person must check the conversation (the draft stays `sending`)."""


class SendNotConfirmed(RuntimeError):
    """The reply was submitted but could not be read back after its anchor."""

    def __init__(self, message: str, site: str = "", url: str = "", screenshot: str | None = None,
                 html: str | None = None):
        super().__init__(message)
        self.site, self.element, self.url = site, "send_button", url
        self.screenshot, self.html = screenshot, html

    def __reduce__(self):  # crosses Ray process boundaries intact
        return (SendNotConfirmed, (str(self), self.site, self.url, self.screenshot, self.html))
