"""``RESILIENCE["METRICS"]["EMF"]``: the settings of ``CloudWatchEMFSink`` and the CloudWatch rules they obey.

Parsed with the rest of ``METRICS`` (``metrics.SINK_SETTINGS``), whether or not the sink is in
``SINKS``, so a typo is a system-check error at start-up. The name and value rules are CloudWatch's
(the EMF specification and the limits its client libraries enforce); the sink applies the same ones
to event tags when it writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from resilience.core.validation import check_number, over_defaults
from resilience.exceptions import ConfigurationError
from resilience.observability.metrics import EVENT_TAGS

MAX_DIMENSIONS = 30  # dimension names per DimensionSet
MAX_METRICS = 100  # metric definitions per EMF line
MAX_NAME = 250  # characters of a dimension name
MAX_VALUE = 1024  # characters of a dimension value, and of a metric name
MAX_NAMESPACE = 255
NAMESPACE = re.compile(r"[A-Za-z0-9._#:/-]+")
# Static dimensions leave room for every tag an event may add (EVENT_TAGS), so that no event's
# line is ever refused for having too many dimensions.
MAX_STATIC_DIMENSIONS = MAX_DIMENSIONS - len(EVENT_TAGS)

EMF_DEFAULTS: dict[str, Any] = {
    "namespace": "Resilience",  # the CloudWatch namespace of every metric
    "dimensions": {},  # static dimensions on every line, e.g. {"Service": "orders", "Environment": "prod"}
    "interval": 60,  # seconds between two flushes (counts are summed over it)
    "logger": None,  # a logger name (each line at INFO); None: lines go to sys.stdout
    "storage_resolution": 60,  # 60: standard resolution; 1: high resolution (billed as such)
    "max_series": 10_000,  # distinct (metric, tags) per interval; later ones are dropped and counted
}


@dataclass(frozen=True)
class EMFConfig:
    namespace: str = EMF_DEFAULTS["namespace"]
    dimensions: tuple[tuple[str, str], ...] = ()
    interval: float = EMF_DEFAULTS["interval"]
    logger: str | None = None
    storage_resolution: int = EMF_DEFAULTS["storage_resolution"]
    max_series: int = EMF_DEFAULTS["max_series"]


def dimension_name_problem(name: Any) -> str | None:
    """Why ``name`` cannot be a dimension name (None: it can): 1-250 printable ASCII characters, not
    starting with ``:``; ``_aws`` is the metadata member of every line."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        return f"1-{MAX_NAME} characters with one that is not a space"
    if not (name.isascii() and name.isprintable()) or name.startswith(":") or name == "_aws":
        return 'printable ASCII, not starting with ":" and not "_aws"'
    return None


def dimension_value(text: str) -> str:
    """``text`` as CloudWatch takes a dimension value: printable ASCII (anything else escaped, so two
    names never share a value), at least one character that is not a space, at most 1024 characters."""
    value = text if text.isascii() and text.isprintable() else text.encode("unicode_escape").decode("ascii")
    if not value.strip():
        value = f'"{value}"'  # blank names stay distinct, and visible
    return value[:MAX_VALUE]


def check_namespace(namespace: Any, path: str) -> str:
    """``namespace`` when CloudWatch takes it as a namespace; else ``ConfigurationError`` naming ``path``."""
    if (
        not isinstance(namespace, str)
        or not NAMESPACE.fullmatch(namespace)
        or len(namespace) > MAX_NAMESPACE
        or namespace.startswith("AWS/")
    ):
        raise ConfigurationError(
            f'{path} must be 1-{MAX_NAMESPACE} of A-Z a-z 0-9 . _ # : / - and not start with "AWS/", got {str(namespace)[:100]!r}'
        )
    return namespace


def parse_emf(value: Any, path: str) -> EMFConfig:
    """The EMF options over ``EMF_DEFAULTS`` (None: all defaults); each error names its key."""
    options = over_defaults(value, EMF_DEFAULTS, path)
    namespace = check_namespace(options["namespace"], f'{path}["namespace"]')
    check_number(f'{path}["interval"]', options["interval"], 1, 3600)
    check_number(f'{path}["max_series"]', options["max_series"], 1, 1_000_000, integer=True)
    resolution = options["storage_resolution"]
    if resolution not in (1, 60) or isinstance(resolution, bool):
        raise ConfigurationError(f'{path}["storage_resolution"] must be 60 or 1, got {resolution!r}')
    logger = options["logger"]
    if logger is not None and (not isinstance(logger, str) or not logger.strip() or not logger.isprintable()):
        raise ConfigurationError(f'{path}["logger"] must be None (standard output) or a logger name, got {logger!r}')
    return EMFConfig(
        namespace=namespace,
        dimensions=parse_dimensions(options["dimensions"], f'{path}["dimensions"]'),
        interval=float(options["interval"]),
        logger=logger,
        storage_resolution=resolution,
        max_series=options["max_series"],
    )


def parse_dimensions(value: Any, path: str) -> tuple[tuple[str, str], ...]:
    """Static dimensions (a dict name -> value) as CloudWatch takes them, leaving room for the event tags."""
    if not isinstance(value, dict):
        raise ConfigurationError(f"{path} must be a dict of dimension name -> value, got {type(value).__name__}")
    if len(value) > MAX_STATIC_DIMENSIONS:
        raise ConfigurationError(
            f"{path} must have at most {MAX_STATIC_DIMENSIONS} dimensions (CloudWatch takes {MAX_DIMENSIONS}, "
            f"less the {len(EVENT_TAGS)} tags events may add), got {len(value)}"
        )
    for name, text in value.items():
        problem = dimension_name_problem(name)
        if problem is not None:
            raise ConfigurationError(f"{path} has the name {str(name)[:100]!r}; dimension names must be {problem}")
        if name in EVENT_TAGS:
            raise ConfigurationError(f"{path}[{name!r}] is a tag every event sets ({', '.join(EVENT_TAGS)}): use another name")
        if not isinstance(text, str) or dimension_value(text) != text:
            raise ConfigurationError(
                f"{path}[{name!r}] must be 1-{MAX_VALUE} printable ASCII characters with one that is not a space, "
                f"got {str(text)[:100]!r}"
            )
    return tuple(value.items())
