from django.apps import AppConfig


class ResilienceConfig(AppConfig):
    name = "resilience"
    verbose_name = "Resilience"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from resilience import checks  # noqa: F401 - registers the system checks
        from resilience.observability import history

        history.connect()
        from resilience.observability.alerts import dispatch

        dispatch.connect()

        from resilience.middleware import admission_checks
        from resilience.ratelimit.admission import admission_check

        if admission_check not in admission_checks:
            admission_checks.append(admission_check)
        from django.conf import settings

        if hasattr(settings, "AUTH_ADFS"):
            from resilience.integrations.entra.claims import connect_session_claims

            connect_session_claims()
        try:
            from resilience.throttling import connect_signals
        except ImportError:  # DRF not installed: no throttles, no login cool-off
            return
        connect_signals()
