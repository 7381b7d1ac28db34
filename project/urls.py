from django.contrib import admin
from django.urls import include, path

from project.demo import views

urlpatterns = [
    path("", views.index, name="demo-index"),
    path("status/", views.status_page, name="demo-status"),
    path("admin/", admin.site.urls),
    path("api/", include("project.demo.urls")),
]
