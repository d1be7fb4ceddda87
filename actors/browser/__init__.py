"""Browser session actors: one Playwright session per chat account (see session.py)."""
