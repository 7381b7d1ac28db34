"""A URLconf imported by nothing else: the routing test imports it as a fresh process would."""

from django.http import HttpResponse
from django.urls import path

from resilience.routing.routes import resilience_route


@resilience_route(timeout=0.5)
def fresh(request):
    return HttpResponse("ok")


urlpatterns = [path("fresh/", fresh)]
