"""One URL, ``/bench/``, in every configuration."""

from django.urls import path

from benchmarks.server_app.views import bench

urlpatterns = [path("bench/", bench, name="bench")]
