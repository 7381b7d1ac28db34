from django.urls import path

from . import views

urlpatterns = [
    path("quote/", views.quote, name="quote"),
    path("chaos/", views.chaos, name="chaos"),
    path("dashboard/", views.dashboard, name="dashboard"),
]
