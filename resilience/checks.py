"""System checks for misconfiguration (``resilience.E0xx`` errors, ``resilience.W0xx`` warnings)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from resilience.conf import resilience_settings
from resilience.exceptions import ConfigurationError
from resilience.storage.redis.client import cache_locations, cluster_cache, cluster_location, not_a_cache
from resilience.storage.redis.urls import TLS_FILE_ARGUMENTS, is_url, tls_files

DJANGO_REDIS_BACKEND = "django_redis.cache.RedisCache"


def _settings_load() -> bool:
    """False when ``RESILIENCE`` itself is malformed: ``resilience.E001`` says so, once; the other
    checks then stay silent instead of repeating the same message under their own ids."""
    try:
        resilience_settings.values  # noqa: B018 - loads and validates
    except ConfigurationError:
        return False
    return True


HINTS = {
    "resilience.E011": "See the ROUTES section of README.md.",
    "resilience.E012": "See the rate limiting section of README.md.",
    "resilience.E014": "A dotted path to a function request -> tenant id or None; tenant limits need it.",
}


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Every key that does not validate or parse (``problems()``), once each under its id (E001 by
    default; E011 ROUTES, E012 RATE_LIMITS and TRUSTED_PROXIES, E014 TENANT_RESOLVER); then whether
    ``REDIS`` names a usable cache."""
    problems = resilience_settings.problems()
    messages: list[Any] = [
        Error(message, hint=HINTS.get(check_id, "See the settings table in README.md."), id=check_id)
        for check_id, message in problems
    ]
    if not _settings_load():
        return messages
    redis_setting = resilience_settings.REDIS
    if redis_setting is None:
        if not settings.DEBUG:
            messages.append(
                Warning(
                    'RESILIENCE["REDIS"] is not set: breaker state lives in each worker process.',
                    hint="Each worker would have its own breakers; set it to a django-redis cache alias or a redis:// URL.",
                    id="resilience.W001",
                )
            )
    elif is_url(redis_setting):  # whether a file is there is a fact of this machine, not of the setting: here only
        messages += _missing_files([('RESILIENCE["REDIS"]', name, file) for name, file in tls_files(redis_setting)])
    else:
        caches = getattr(settings, "CACHES", {})
        if redis_setting not in caches:
            messages.append(
                Error(
                    f"{not_a_cache(caches)}.",
                    hint="Give a redis:// URL (a password percent-encoded), or name a django-redis cache of CACHES.",
                    id="resilience.E002",
                )
            )
        elif cluster_location(caches[redis_setting].get("LOCATION")):
            messages.append(Error(f"{cluster_cache(redis_setting)}.", id="resilience.E003"))
        elif caches[redis_setting].get("BACKEND") != DJANGO_REDIS_BACKEND:
            messages.append(
                Error(
                    f'RESILIENCE["REDIS"] names cache {redis_setting!r}, whose backend is not {DJANGO_REDIS_BACKEND}.',
                    hint="Use a django-redis cache (Django's own RedisCache exposes no client to share), or a redis:// URL.",
                    id="resilience.E003",
                )
            )
        else:
            try:
                locations = cache_locations(redis_setting, caches[redis_setting].get("LOCATION"))
            except ConfigurationError as exc:  # else every request that needs Redis would answer 500
                messages.append(Error(f"{exc}.", hint="Percent-encode a password's / @ : characters.", id="resilience.E001"))
            else:
                messages += _missing_cache_tls_files(redis_setting, caches[redis_setting], locations)
    return messages


def _missing_cache_tls_files(alias: str, cache: dict[str, Any], locations: list[str]) -> list[Any]:
    """E001 for each TLS file a cache's ``LOCATION`` query or ``CONNECTION_POOL_KWARGS`` names that is not
    a file: as for a ``REDIS`` URL, or every Redis-backed feature would quietly fall back at run time."""
    pool = (cache.get("OPTIONS") or {}).get("CONNECTION_POOL_KWARGS") or {}
    named = [(f'CACHES[{alias!r}]["LOCATION"]', name, file) for url in locations for name, file in tls_files(url)]
    if isinstance(pool, dict):
        named += [(f'CACHES[{alias!r}]["OPTIONS"]["CONNECTION_POOL_KWARGS"]', name, pool[name])
                  for name in TLS_FILE_ARGUMENTS if isinstance(pool.get(name), str)]  # fmt: skip
    return _missing_files(named)


def _missing_files(named: list[tuple[str, str, str]]) -> list[Any]:
    """E001 for each (where, argument, file) whose file is not there."""
    return [
        Error(f"{where} names {name}={file!r}, which is not a file.", id="resilience.E001")
        for where, name, file in named
        if not os.path.isfile(file)
    ]


MIDDLEWARE_PATH = "resilience.middleware.ResilienceMiddleware"
SECURITY = "django.middleware.security.SecurityMiddleware"
MUST_FOLLOW = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
)


@register(Tags.compatibility)
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """The middleware must shed load and start the deadline before sessions, auth and CSRF run."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if MIDDLEWARE_PATH not in middleware:
        return []
    position = middleware.index(MIDDLEWARE_PATH)
    messages: list[Any] = []
    if SECURITY in middleware and middleware.index(SECURITY) > position:
        messages.append(
            Error(
                "ResilienceMiddleware comes before SecurityMiddleware.",
                hint="Put it right after SecurityMiddleware, so HTTPS redirects and security headers still apply to 503/504.",
                id="resilience.E010",
            )
        )
    for name in MUST_FOLLOW:
        if name in middleware and middleware.index(name) < position:
            messages.append(
                Error(
                    f"ResilienceMiddleware comes after {name.rsplit('.', 1)[-1]}.",
                    hint="Put it right after SecurityMiddleware: the deadline and the concurrency cap must cover the "
                    "session and authentication work, and an overloaded server must refuse before doing it.",
                    id="resilience.E010",
                )
            )
    return messages


@register(Tags.urls)
def check_routes(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Every URL name in ``RESILIENCE["ROUTES"]`` exists (W011). A malformed entry is E011, reported
    by ``check_settings`` with the other settings problems."""
    if not _settings_load():
        return []
    from django.urls import NoReverseMatch, get_resolver, reverse

    try:
        table = resilience_settings.ROUTES
    except ConfigurationError:
        return []  # resilience.E011 reports it
    known = {k for k in get_resolver().reverse_dict if isinstance(k, str)}
    messages: list[Any] = []
    for name in table.by_name:
        if ":" in name:
            try:
                reverse(name)
            except NoReverseMatch as exc:
                if "is not a registered namespace" not in str(exc) and "not a valid view function" not in str(exc):
                    continue  # exists, but needs arguments
            else:
                continue
        elif name in known:
            continue
        messages.append(Warning(f'RESILIENCE["ROUTES"] names URL {name!r}, which is not in the URLconf.', id="resilience.W011"))
    return messages


@register(Tags.compatibility)
def check_rate_limits(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Route and DRF throttle rates (``RATE_LIMITS`` itself is a settings check): a typo must stop
    the deploy, not answer 500 later."""
    if not _settings_load():
        return []
    from resilience.ratelimit.policies import LOGIN_SCOPES, check_login_fail, policy

    hint = "See the rate limiting section of README.md."
    messages: list[Any] = []
    rates: list[tuple[str, Any, str]] = []  # (policy name, rate, where it is set)
    try:
        routes = resilience_settings.ROUTES.all_routes()
    except ConfigurationError:
        routes = []  # resilience.E011 reports it
    rates += [("route", r.rate, f'RESILIENCE["ROUTES"] {r.label}') for r in routes if r.rate is not None]
    rest = getattr(settings, "REST_FRAMEWORK", {}) or {}
    for scope, rate in (rest.get("DEFAULT_THROTTLE_RATES") or {}).items():
        if rate is not None:
            rates.append((str(scope), rate, f'REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["{scope}"]'))
    for name, rate, where in rates:
        try:
            rule = policy(name, rate, where, "local" if name in LOGIN_SCOPES else "open")
            if name in LOGIN_SCOPES:  # LoginRateThrottle would refuse it at every login
                check_login_fail(rule, where)
        except ConfigurationError as exc:
            messages.append(Error(str(exc), hint=hint, id="resilience.E012"))
    return messages


def _view_classes(patterns: Any) -> Iterator[Any]:
    """The class-based views of a URLconf (DRF's ``as_view()`` keeps ``cls``, Django's ``view_class``)."""
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            yield from _view_classes(pattern.url_patterns)
            continue
        callback = getattr(pattern, "callback", None)
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if view is not None:
            yield view


@register(Tags.compatibility)
def check_throttle_rates(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """A throttle whose scope has no rate must stop the deploy: DRF raises at the first request."""
    if not _settings_load():
        return []
    try:
        import rest_framework  # noqa: F401
    except ImportError:
        return []
    from django.urls import get_resolver

    from resilience.throttling import throttle_problems

    try:
        views = list(dict.fromkeys(_view_classes(get_resolver().url_patterns)))
    except Exception:  # noqa: BLE001 - a broken URLconf is Django's own check to report
        views = []
    return [
        Error(problem, hint="See the rate limiting section of README.md.", id="resilience.E013")
        for problem in throttle_problems(views)
    ]


REFRESH_TASK = "resilience.tasks.refresh_aws_credentials"  # resilience.tasks.REFRESH_TASK, without importing celery
CREDENTIALS_HINT = "See the AWS credentials section of README.md."


def _beat_entries() -> list[Any]:
    """The beat schedule's entries: ``CELERY_BEAT_SCHEDULE`` and the current Celery app's ``beat_schedule``."""
    entries = list((getattr(settings, "CELERY_BEAT_SCHEDULE", None) or {}).values())
    try:
        from celery import current_app
    except ImportError:
        return entries
    try:
        entries += list((current_app.conf.beat_schedule or {}).values())
    except Exception:  # noqa: BLE001 - a broken Celery configuration is Celery's to report
        pass
    return entries


def _every(entry: dict[str, Any]) -> float | None:
    """Seconds between a beat entry's runs when it says so plainly (a number or a timedelta); None
    for a crontab or another schedule object, which the check does not second-guess."""
    schedule = entry.get("schedule")
    if isinstance(schedule, (int, float)) and not isinstance(schedule, bool):
        return float(schedule)
    seconds = getattr(schedule, "total_seconds", None)
    return float(seconds()) if callable(seconds) else None


def _never_runs(entry: dict[str, Any]) -> str | None:
    """Why a beat entry would never run its task (a schedule of 0 or less, a string, or a message
    that expires at once), or None. A crontab or another schedule object is taken as it is."""
    schedule = entry.get("schedule")
    if isinstance(schedule, str) or schedule is None or isinstance(schedule, bool):
        return f"has the schedule {schedule!r}, which is not a number of seconds, a timedelta or a Celery schedule"
    seconds = _every(entry)
    if seconds is not None and not seconds > 0:
        return f"runs every {seconds:g} s"
    options = entry.get("options")
    expires = options.get("expires") if isinstance(options, dict) else None
    if isinstance(expires, int | float) and not isinstance(expires, bool) and expires <= 0:
        return f"sends messages that expire after {expires:g} s"
    return None


def _redis_passwords() -> set[str]:
    """The passwords of the Redis the library uses: in its URL, or in the django-redis cache it names
    (``LOCATION`` URLs, ``OPTIONS["PASSWORD"]`` and ``OPTIONS["CONNECTION_POOL_KWARGS"]["password"]``),
    as Redis receives them: a URL's password percent-decoded, as redis-py does."""
    from urllib.parse import parse_qs, unquote, urlsplit

    target = resilience_settings.REDIS
    if not isinstance(target, str):
        return set()
    urls: list[str] = [target] if is_url(target) else []
    found: set[str] = set()
    cache: Any = settings.CACHES.get(target) if not urls else None
    if isinstance(cache, dict):
        location: Any = cache.get("LOCATION")
        urls = [location] if isinstance(location, str) else [u for u in location or () if isinstance(u, str)]
        options: Any = cache.get("OPTIONS") or {}
        pool_kwargs: Any = options.get("CONNECTION_POOL_KWARGS") if isinstance(options, dict) else None
        for password in (options.get("PASSWORD") if isinstance(options, dict) else None,
                         pool_kwargs.get("password") if isinstance(pool_kwargs, dict) else None):  # fmt: skip
            if isinstance(password, str):
                found.add(password)
    for url in urls:
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        if parts.password:
            found.add(unquote(parts.password))
        found.update(p for p in parse_qs(parts.query).get("password", []) if p)  # redis-py takes it there too
    return found


@register(Tags.compatibility)
def check_aws_credentials(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """``RESILIENCE["AWS"]["CREDENTIALS"]``: an encryption key that is there and is not the Redis
    password (E015), a schedule that refreshes before the credentials are due (E016), and a beat
    entry that runs the refresh (W012). A malformed entry is E001, reported by ``check_settings``."""
    if not _settings_load():
        return []
    from resilience.integrations.aws.settings import encryption_key

    try:
        config = resilience_settings.AWS["CREDENTIALS"]
    except ConfigurationError:
        return []  # resilience.E001 reports it
    if config is None:
        return []
    messages: list[Any] = []
    try:
        key = encryption_key(config)
    except ConfigurationError as exc:
        hint = 'Set it to cryptography.fernet.Fernet.generate_key().decode(), or "env:NAME" with the key in $NAME.'
        messages.append(Error(str(exc), hint=hint, id="resilience.E015"))
    else:
        if key.decode() in _redis_passwords():
            hint = "Anyone who can read Redis could then use the role: give the shared copy a key of its own."
            message = 'RESILIENCE["AWS"]["CREDENTIALS"]["encryption_key"] is the Redis password.'
            messages.append(Error(message, hint=hint, id="resilience.E015"))
    if config.schedule > config.duration - config.refresh_margin:
        messages.append(
            Error(
                f'RESILIENCE["AWS"]["CREDENTIALS"]["schedule"] ({config.schedule:g} s) is longer than "duration" minus '
                f'"refresh_margin" ({config.duration} - {config.refresh_margin:g} s): each run would find the credentials '
                "due, and they would still run under the margin before the next one.",
                hint="Run the refresh more often, or assume the role for longer.",
                id="resilience.E016",
            )
        )
    refreshing = [e for e in _beat_entries() if isinstance(e, dict) and e.get("task") == REFRESH_TASK]
    for entry in refreshing:
        problem = _never_runs(entry)
        if problem:
            messages.append(
                Error(
                    f"The beat entry for {REFRESH_TASK!r} {problem}: the credentials would never be refreshed by Celery.",
                    hint='Use resilience.tasks.beat_entry(schedule) with RESILIENCE["AWS"]["CREDENTIALS"]["schedule"].',
                    id="resilience.E017",
                )
            )
    slower = [seconds for seconds in map(_every, refreshing) if seconds is not None and seconds > config.schedule]
    if slower:
        messages.append(
            Warning(
                f"The beat entry for {REFRESH_TASK!r} runs every {max(slower):g} s, but "
                f'RESILIENCE["AWS"]["CREDENTIALS"]["schedule"] is {config.schedule:g} s: the credentials may run '
                "under refresh_margin before a run comes.",
                hint="Use resilience.tasks.beat_entry(schedule) with the same number, or change schedule to match.",
                id="resilience.W013",
            )
        )
    if not refreshing:
        messages.append(
            Warning(
                f'RESILIENCE["AWS"]["CREDENTIALS"] is set, but no beat entry runs {REFRESH_TASK!r} '
                "(in CELERY_BEAT_SCHEDULE or the Celery app's beat_schedule).",
                hint="Add resilience.tasks.beat_entry(schedule) to the beat schedule, or each web worker refreshes by "
                "itself inside the mandatory window. With a database scheduler, silence resilience.W012.",
                id="resilience.W012",
            )
        )
    return messages


@register(Tags.compatibility)
def check_aws_failover(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """``RESILIENCE["AWS"]["FAILOVER"]``: every service a boto3 service, every operation a method that
    may fail over (a read, or a write with an idempotency token): E018, from botocore's models."""
    if not _settings_load():
        return []
    try:
        if not resilience_settings.AWS["FAILOVER"]:
            return []
    except ConfigurationError:
        return []  # resilience.E001 reports it
    try:
        from resilience.integrations.aws.failover import settings_problems
    except ImproperlyConfigured as exc:  # MissingDependency: boto3 is not installed
        return [Error(f'RESILIENCE["AWS"]["FAILOVER"] is set, but {exc}', id="resilience.E018")]
    hint = "Declare reads, and writes that carry an idempotency token (ClientRequestToken, ClientToken...)."
    return [Error(problem, hint=hint, id="resilience.E018") for problem in settings_problems()]


@register(Tags.security)
def check_prometheus_scrape(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """``RESILIENCE["METRICS"]["PROMETHEUS"]["allow"]`` with a network of every address (W014): the
    scrape view is then open to anyone who can reach the server, which is never the default."""
    if not _settings_load():
        return []
    try:
        allow = resilience_settings.METRICS.options["PROMETHEUS"].allow
    except ConfigurationError:
        return []  # resilience.E001 reports it
    everyone = [str(network) for network in allow if network.prefixlen == 0]
    if not everyone:
        return []
    return [
        Warning(
            f'RESILIENCE["METRICS"]["PROMETHEUS"]["allow"] contains {", ".join(everyone)}: every address may scrape '
            "the metrics (breaker names, rates, failovers) without logging in.",
            hint="List the addresses of your Prometheus servers, or scrape as a staff user with resilience.view_circuit.",
            id="resilience.W014",
        )
    ]
