"""Shared fixtures: one Ray instance, one broker and one database server for the whole run.

Each test gets its own namespace (database name, exchange and queue prefix), so tests never see
each other's data while sharing the expensive services. Stand-in fixtures live in
tests/fixtures/<name>.py, one module per stand-in.
"""
pytest_plugins = [
    "tests.fixtures.infra",
    "tests.fixtures.chatsite",
    "tests.fixtures.phoenix",
    "tests.fixtures.aiserver",
    "tests.fixtures.sheets",
    "tests.fixtures.pipeline",
    "tests.fixtures.fakellm",
]
