"""``path("resilience/", include("resilience.urls"))``: the Prometheus scrape view at ``metrics/``."""

from django.urls import path

from resilience.observability.scrape import metrics

app_name = "resilience"
urlpatterns = [path("metrics/", metrics, name="metrics")]
