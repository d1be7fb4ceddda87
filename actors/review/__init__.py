"""The review desk: people approve, edit or reject drafts before anything is sent.

`make_app(config, store)` builds the aiohttp application (API + static page); `server.ReviewDesk`
is the Ray actor that serves it. Nothing is sent from here: an approval writes `draft.approved` to
the outbox and the account's browser actor sends it.
"""
from actors.review.app import make_app

__all__ = ["make_app"]
