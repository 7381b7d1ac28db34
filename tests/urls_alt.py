"""A second URLconf, chosen per request by ``AltUrlconfMiddleware`` (like django-hosts does)."""

from django.urls import path

from .urls import report

urlpatterns = [path("other/", report, name="named")]


class AltUrlconfMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.headers.get("X-Alt-Site"):
            request.urlconf = "tests.urls_alt"
        return self.get_response(request)
