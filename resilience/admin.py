"""The "Circuits" admin page: every breaker's live state, its last trip and transition, its state
timeline, store health, and reset / force open / disable behind a confirmation step."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from resilience import circuits
from resilience.breakers.registry import breakers
from resilience.exceptions import ResilienceError, UnknownBreakerError
from resilience.models import Circuit, CircuitEvent

# action -> (button, done, what it does in every worker)
ACTIONS = {
    "reset": ("Reset", "reset", "closes it: calls go through again and its window starts afresh."),
    "force_open": ("Force open", "forced open", "rejects every call through it until someone resets it."),
    "disable": (
        "Disable",
        "disabled",
        "lets every call through without counting or tripping until someone resets it: the dependency is unprotected.",
    ),
}
PER_PAGE = 25  # breakers per page (table and timeline)
REFRESH = ("0", "10", "30", "60")  # seconds between automatic reloads; "0": off
DEFAULT_REFRESH = "30"


@admin.register(Circuit)
class CircuitAdmin(admin.ModelAdmin):
    """A live dashboard instead of a table-backed change list."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        can_change = self.has_change_permission(request)
        if request.method == "POST":
            if not can_change:
                raise PermissionDenied
            return self._post(request)
        span = circuits.RANGES.get(request.GET.get("range", ""), circuits.RANGES["24h"])
        refresh = request.GET.get("refresh", DEFAULT_REFRESH)
        refresh = refresh if refresh in REFRESH else DEFAULT_REFRESH
        snaps = breakers.all()
        page = Paginator(snaps, PER_PAGE).get_page(request.GET.get("page"))
        rows = circuits.rows(page.object_list)

        def query(**changes: Any) -> str:
            values = {"range": span.key, "refresh": refresh, "page": page.number, **changes}
            return "?" + urlencode(values)

        context = {
            **self.admin_site.each_context(request),
            "title": "Circuits",
            "opts": self.model._meta,
            "rows": rows,
            "page": page,
            **circuits.timeline_context({s.name: s.state for s in page.object_list}, span),
            "ranges": [(r, query(range=r.key, page=1)) for r in circuits.RANGES.values()],
            "refresh": int(refresh),
            "refresh_toggle": query(refresh="0" if refresh != "0" else DEFAULT_REFRESH),
            "previous_page": query(page=page.previous_page_number()) if page.has_previous() else None,
            "next_page": query(page=page.next_page_number()) if page.has_next() else None,
            "unused": circuits.unused(snaps),
            "health": circuits.store_health({s.name: s for s in snaps}),
            "actions": {key: label for key, (label, _, _) in ACTIONS.items()},
            "can_change": can_change,
            "can_view_history": request.user.has_perm("resilience.view_circuitevent"),
            "store": "Redis (shared by every worker)" if breakers.store.remote else "in-process (this worker only)",
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/resilience/circuit/change_list.html", context)

    def _post(self, request: HttpRequest) -> HttpResponse:
        """First POST: a confirmation page; the confirmed POST acts. Every answer but the confirmation
        page redirects back (POST/redirect/GET); nothing posted is echoed unless it is a known name."""
        action, name = request.POST.get("action", ""), request.POST.get("name", "")
        back = request.get_full_path()  # the page as it was: range, page and refresh kept
        if action not in ACTIONS:
            messages.error(request, "Unknown action.")
            return HttpResponseRedirect(back)
        try:
            known = name in breakers.names()
        except ResilienceError as exc:
            messages.error(request, f"Could not list circuits: {type(exc).__name__}.")
            return HttpResponseRedirect(back)
        if not known:
            messages.error(request, "Unknown circuit.")
            return HttpResponseRedirect(back)
        if request.POST.get("confirm") != "yes":
            label, _, effect = ACTIONS[action]
            context = {
                **self.admin_site.each_context(request),
                "title": f"{label} circuit {name}?",
                "opts": self.model._meta,
                "action": action,
                "label": label,
                "name": name,
                "effect": effect,
                "state": breakers.snapshot(name).state,
                "back": back,
            }
            return TemplateResponse(request, "admin/resilience/circuit/confirm.html", context)
        self._act(request, action, name)
        return HttpResponseRedirect(back)

    def _act(self, request: HttpRequest, action: str, name: str) -> None:
        actor = f"admin:{request.user.get_username()}"
        try:
            getattr(breakers.get(name), action)(actor=actor)
        except UnknownBreakerError:
            messages.error(request, "Unknown circuit.")
        except ResilienceError as exc:
            messages.error(request, f"Could not change circuit {name!r}: {type(exc).__name__}.")
        else:
            messages.success(request, f"Circuit {name!r} {ACTIONS[action][1]}.")

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        return HttpResponseRedirect("../../")

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        return HttpResponseRedirect("../../../circuitevent/?" + urlencode({"breaker__exact": object_id}))


@admin.register(CircuitEvent)
class CircuitEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "breaker", "old_state", "new_state", "reason", "actor", "failure_rate", "slow_rate", "calls")
    list_filter = ("new_state",)
    search_fields = ("breaker", "actor")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
