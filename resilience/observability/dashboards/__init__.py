"""The dashboards shipped with the package: ``cloudwatch.json`` (a PutDashboard body) and
``grafana.json`` (a Grafana dashboard on a CloudWatch data source, chosen by its ``datasource``
variable). Both read the namespace ``Resilience``; ``body()`` gives them for another namespace and,
for CloudWatch, region."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KINDS = ("cloudwatch", "grafana")
SHIPPED_NAMESPACE = "Resilience"
_HERE = Path(__file__).resolve().parent


def shipped(kind: str) -> dict[str, Any]:
    """The file as shipped, parsed. ValueError for a kind other than ``KINDS``."""
    if kind not in KINDS:
        raise ValueError(f"no {kind!r} dashboard; one of {', '.join(KINDS)}")
    return json.loads((_HERE / f"{kind}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def body(kind: str, namespace: str = SHIPPED_NAMESPACE, region: str | None = None) -> str:
    """The dashboard as JSON text for ``namespace`` (a validated EMF namespace: no quotes) and, in
    CloudWatch's metric widgets, ``region``."""
    board = shipped(kind)
    if kind == "cloudwatch":
        for widget in board["widgets"]:
            properties = widget["properties"]
            if widget["type"] == "text":
                properties["markdown"] = properties["markdown"].replace(f"`{SHIPPED_NAMESPACE}`", f"`{namespace}`")
            if widget["type"] != "metric":
                continue
            if region:
                properties["region"] = region
            for (query,) in properties["metrics"]:
                query["expression"] = query["expression"].replace(
                    f'Namespace="{SHIPPED_NAMESPACE}"', f'Namespace="{namespace}"'
                )  # fmt: skip
    else:
        for variable in board["templating"]["list"]:
            if variable["name"] == "namespace":
                variable["query"] = namespace
                variable["current"] = {"text": namespace, "value": namespace}
    return json.dumps(board, indent=2)
