"""Every Python block of README.md runs as pasted, in a configured project.

Settings blocks are applied (addresses adapted to the test services; ``...`` entries, which stand
for "the rest of your list", dropped) and must pass ``manage.py check`` without errors; code blocks
are executed. The only names the test defines are the placeholders a block names for your own code
(``order``, ``fn``, ``prices_from_replica``).
"""

from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.checks import ERROR, run_checks

from .readme import all_python_blocks

pytestmark = pytest.mark.django_db(transaction=True)  # the README runs transaction_attempts(), which must be outermost
BLOCKS = all_python_blocks()
APPLIED = ("RESILIENCE", "REST_FRAMEWORK", "MIDDLEWARE", "CACHES", "AUTHENTICATION_BACKENDS")


@pytest.fixture
def placeholders():
    return {"order": object(), "fn": lambda: 42, "prices_from_replica": lambda: ["from the replica"]}


def run(code: str, names: dict[str, Any]) -> dict[str, Any]:
    namespace = {"__name__": "readme_block", **names}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    return namespace


def adapted(name: str, value: Any, key_prefix: str) -> Any:
    """A README setting with the test's addresses, and ``...`` ("the rest of your list") dropped."""
    if name == "MIDDLEWARE":
        return [entry for entry in value if entry is not Ellipsis]
    if name == "CACHES":
        return {alias: {**cache, "LOCATION": django_settings.TEST_REDIS_URL} for alias, cache in value.items()}
    if name == "RESILIENCE":
        return {**value, "KEY_PREFIX": key_prefix, "HISTORY": False}
    return value


def apply(settings, namespace: dict[str, Any], key_prefix: str) -> None:
    for name in APPLIED:
        if name in namespace:
            setattr(settings, name, adapted(name, namespace[name], key_prefix))


def test_every_block_is_run_by_this_file():
    assert len(BLOCKS) >= 13  # a block removed from the README is fine; this catches the extraction breaking


@pytest.mark.parametrize(("heading", "code"), BLOCKS, ids=[f"{n}-{h[3:].split()[0].lower()}" for n, (h, _) in enumerate(BLOCKS)])
def test_the_readme_block_runs_as_pasted(settings, key_prefix, placeholders, heading, code):
    settings.ROOT_URLCONF = "tests.urls_empty"
    install = run(BLOCKS[0][1], {})  # "Install in your project": the base every other block builds on
    assert "resilience" in install["INSTALLED_APPS"]
    apply(settings, install, key_prefix)
    namespace = run(code, placeholders)
    apply(settings, namespace, key_prefix)
    if "DATABASES" in namespace:
        from django.db.utils import load_backend

        assert load_backend(namespace["DATABASES"]["default"]["ENGINE"]).DatabaseWrapper.vendor == "postgresql"
    errors = [m for m in run_checks(include_deployment_checks=False) if m.level >= ERROR and m.id.startswith("resilience.")]
    assert errors == []


def test_the_readmes_breaker_block_does_what_it_says(settings, key_prefix, placeholders):
    from resilience import breakers

    settings.ROOT_URLCONF = "tests.urls_empty"
    apply(settings, run(BLOCKS[0][1], {}), key_prefix)
    heading, code = next(b for b in BLOCKS if b[0] == "## Circuit breakers")
    run(code, placeholders)
    assert breakers.get("payments").state == "disabled"  # the block's last action
    from django.core.exceptions import PermissionDenied

    assert breakers.get("payments").config.ignore == (PermissionDenied,)
    breakers.get("payments").reset()


def test_the_readmes_fallback_block_falls_back(settings, key_prefix, placeholders):
    settings.ROOT_URLCONF = "tests.urls_empty"
    heading, code = next(b for b in BLOCKS if b[0] == "## Fallbacks and graceful degradation")
    namespace = run(code, placeholders)
    assert namespace["prices"]() is None  # the primary ran (its body is `...`)
    assert namespace["recommendations"]("someone") is None


def test_the_readmes_routes_pick_the_route_they_describe(placeholders):
    from resilience.routing.routes import RouteTable

    heading, code = next(b for b in BLOCKS if b[0] == "## Middleware and routes")
    table = RouteTable(run(code, placeholders)["RESILIENCE"]["ROUTES"])
    assert table.match("/reports/12/", "tests.urls_empty").timeout == 60  # the regex beats the "*" glob
    assert table.match("/api/items/", "tests.urls_empty").timeout == 5
    assert table.match("/elsewhere/", "tests.urls_empty").timeout == 30
