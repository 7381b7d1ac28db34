"""``resilience.metrics``: the metrics sinks by their short paths, for ``RESILIENCE["METRICS"]["SINKS"]``
(``"resilience.metrics.PrometheusSink"``). They live in ``resilience.observability``; each is imported
on first use, so naming one never imports prometheus_client or boto3 for the others."""

from resilience.integrations import lazy_exports

SINKS = {
    "MetricsSink": "metrics",
    "InMemorySink": "metrics",
    "CloudWatchEMFSink": "emf",
    "CloudWatchSink": "cloudwatch",
    "PrometheusSink": "prometheus",
}
__all__ = list(SINKS)
__getattr__ = lazy_exports("resilience.observability", SINKS)
