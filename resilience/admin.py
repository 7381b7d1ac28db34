"""The "Circuits" admin page: every breaker's live state, with reset / force open actions."""

from __future__ import annotations

import time
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from resilience.breakers.registry import breakers
from resilience.exceptions import ResilienceError, UnknownBreakerError
from resilience.models import Circuit, CircuitEvent

ACTIONS = {"reset": "reset", "force_open": "forced open"}


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
            self._act(request, request.POST.get("action", ""), request.POST.get("name", ""))
            return HttpResponseRedirect(request.path)
        now = time.time()
        rows = [
            {"snap": snap, "since": (now - snap.since) if snap.since else None}
            for snap in breakers.all()
        ]  # fmt: skip
        context = {
            **self.admin_site.each_context(request),
            "title": "Circuits",
            "opts": self.model._meta,
            "rows": rows,
            "can_change": can_change,
            "can_view_history": request.user.has_perm("resilience.view_circuitevent"),
            "store": "Redis (shared by every worker)" if breakers.store.remote else "in-process (this worker only)",
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/resilience/circuit/change_list.html", context)

    def _act(self, request: HttpRequest, action: str, name: str) -> None:
        if action not in ACTIONS:
            messages.error(request, "Unknown action.")
            return
        actor = f"admin:{request.user.get_username()}"
        try:
            getattr(breakers.get(name), action)(actor=actor)
        except UnknownBreakerError:
            messages.error(request, "Unknown circuit.")
        except ResilienceError as exc:
            messages.error(request, f"Could not change circuit {name!r}: {type(exc).__name__}.")
        else:
            messages.success(request, f"Circuit {name!r} {ACTIONS[action]}.")

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        return HttpResponseRedirect("../../")

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        return HttpResponseRedirect("../../../circuitevent/")


@admin.register(CircuitEvent)
class CircuitEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "breaker", "old_state", "new_state", "reason", "actor", "failure_rate", "calls")
    list_filter = ("new_state",)
    search_fields = ("breaker", "actor")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
