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
    "tests.fixtures.llama",
]

import pytest  # noqa: E402

# The fast tier (`./run test --fast`, the inner loop: under 3 minutes): no Chromium, no whole
# pipeline. A test is in the full tier when its module is listed here (it drives Chromium or
# whole stacks: Ray job, demo, chaos, supervisor), it is marked `full`, or it uses a fixture that
# starts the pipeline. A new module that launches Chromium or a stack belongs in this list.
FULL_MODULES = {
    "test_answer_paths", "test_backup", "test_benchmarks_smoke", "test_browser_actor", "test_browser_session",
    "test_chaos", "test_chatsite", "test_demo_serve", "test_doctor", "test_e2e", "test_hosted_layout",
    "test_live_pages", "test_node_loss", "test_ray_job", "test_review_e2e", "test_review_ui",
    "test_reviewers", "test_site_themes", "test_supervisor", "test_supervisor_coverage_gaps",
    "test_store_restart", "test_restart_policy", "test_phoenix_site", "test_spa_spec",
    "test_review_conversations_ui", "test_up", "test_ai_llama", "test_ai_llama_pipeline",
}
FULL_FIXTURES = {"start_pipeline", "pipeline_config"}


def pytest_addoption(parser):
    parser.addoption("--fast", action="store_true",
                     help="the fast tier only: no Chromium, no whole pipeline (tests/conftest.py)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in FULL_MODULES or \
                FULL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.full)
    if config.getoption("--fast"):
        dropped = [i for i in items if i.get_closest_marker("full")]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [i for i in items if not i.get_closest_marker("full")]
