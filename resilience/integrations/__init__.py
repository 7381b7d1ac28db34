"""Adapters at the edge: Postgres, Redis, HTTP, AWS, Entra ID. Each imports its optional library only
when one of its names is first used, so ``pip install django-resilience`` works without any of them."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) that imports ``names[attr]`` (a submodule) on first use:
    the short paths users write in settings (``resilience.integrations.redis.ResilientClient``)."""

    def __getattr__(attr: str) -> Any:
        if attr not in names:
            raise AttributeError(f"module {package!r} has no attribute {attr!r}")
        return getattr(importlib.import_module(f"{package}.{names[attr]}"), attr)

    return __getattr__
