"""Optional integrations and the ``pip`` extra that brings each one.

A module of the app that needs an optional package imports it as usual and turns the ImportError
into ``missing(...)``: a ``resilience.exceptions.MissingDependency`` (an ``ImproperlyConfigured``)
that names the extra to install, instead of a bare ``ModuleNotFoundError`` from deep inside the
library. Classifiers use ``optional(...)``: an exception cannot come from a package that is not
installed, so they answer "no" and the real error propagates.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from resilience.exceptions import MissingDependency

EXTRAS = {
    "rest_framework": "drf",
    "django_redis": "redis",
    "psycopg": "postgres",
    "requests": "http",
    "boto3": "aws",
    "botocore": "aws",
    "django_auth_adfs": "entra",
    "jwt": "entra",
    "re2": "routes",
    "celery": "celery",
    "prometheus_client": "prometheus",
}


def missing(module: str, feature: str) -> MissingDependency:
    """The error to raise when ``feature`` needs ``module`` and it is not installed."""
    extra = EXTRAS.get(module, "all")
    return MissingDependency(f"{feature} needs the {module!r} package: pip install 'django-resilience[{extra}]'")


def optional(module: str) -> ModuleType | None:
    """``module`` if it is installed, else None."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
