"""Shared contracts: event models, settings and ids. Depends on nothing in replydesk."""
