"""No URLs: for processes that need a URLconf and nothing in it."""

urlpatterns: list = []
