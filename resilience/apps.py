from django.apps import AppConfig


class ResilienceConfig(AppConfig):
    name = "resilience"
    verbose_name = "Resilience"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, history  # noqa: F401 - registers the system checks

        history.connect()

        from .middleware import admission_checks
        from .ratelimits import admission_check

        if admission_check not in admission_checks:
            admission_checks.append(admission_check)
        from django.conf import settings

        if hasattr(settings, "AUTH_ADFS"):
            from .auth import connect_session_claims

            connect_session_claims()
        try:
            from .throttling import connect_signals
        except ImportError:  # DRF not installed: no throttles, no login cool-off
            return
        connect_signals()
