"""``{% load resilience %}``: degradable page fragments.

    {% degradable "recommendations" breaker="recs" %}
        {% for item in recommendations %}...{% endfor %}
    {% otherwise %}
        <p>Recommendations are taking a break.</p>
    {% enddegradable %}

The first part renders unless the breaker is open or rendering it fails with an outage error
(a breaker rejection, a connection or database error): then the ``otherwise`` part renders, the
page still renders, and a ``fallback degraded`` event is emitted. Template bugs are not hidden.
A breaker named by a literal string is declared when the template is compiled, so every process
can list and force it before the page is first rendered.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.template.base import FilterExpression, NodeList, Parser, Token

from resilience.breakers.registry import breakers
from resilience.exceptions import ConfigurationError
from resilience.fallbacks.degrade import OUTAGE_ERRORS, breaker_is_open, degraded

register = template.Library()


class DegradableNode(template.Node):
    def __init__(
        self, feature: FilterExpression, breaker: FilterExpression | None, primary: NodeList, otherwise: NodeList
    ) -> None:
        self.feature, self.breaker, self.primary, self.otherwise = feature, breaker, primary, otherwise

    def render(self, context: Any) -> str:
        feature = str(self.feature.resolve(context))
        breaker = self.breaker.resolve(context) if self.breaker is not None else None
        if breaker_is_open(breaker):
            degraded(feature, "circuit_open")
            return self.otherwise.render(context)
        try:
            return self.primary.render(context)
        except OUTAGE_ERRORS as exc:
            degraded(feature, type(exc).__name__)
            return self.otherwise.render(context)


@register.tag("degradable")
def do_degradable(parser: Parser, token: Token) -> DegradableNode:
    bits = token.split_contents()
    if len(bits) not in (2, 3) or (len(bits) == 3 and not bits[2].startswith("breaker=")):
        raise template.TemplateSyntaxError(
            'usage: {% degradable "feature" [breaker="name"] %}…{% otherwise %}…{% enddegradable %}'
        )
    feature = parser.compile_filter(bits[1])
    breaker = parser.compile_filter(bits[2][len("breaker=") :]) if len(bits) == 3 else None
    if breaker is not None and isinstance(breaker.var, str) and not breaker.filters:  # a literal name
        try:
            breakers.declare(str(breaker.var))
        except ConfigurationError as exc:
            raise template.TemplateSyntaxError(str(exc)) from exc
    primary = parser.parse(("otherwise", "enddegradable"))
    otherwise = NodeList()
    if parser.next_token().contents == "otherwise":
        otherwise = parser.parse(("enddegradable",))
        parser.delete_first_token()
    return DegradableNode(feature, breaker, primary, otherwise)
