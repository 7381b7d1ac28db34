"""The Entra endpoint of the tests that race first requests (in-process threads and a real gunicorn).

``/me/`` answers who is authenticated and, to count provider configurations, the process and the
identity of the configuration django-auth-adfs's backend uses now. In gunicorn, the setting
``ENTRA_FAKE_IDP`` (``{"SERVER": ..., "CA_BUNDLE": ...}``) points django-auth-adfs at the test's fake
provider: its own settings refuse a ``SERVER`` beside ``TENANT_ID``, so the tests set it after import.
"""

import os

from django.conf import settings
from django.urls import path
from django_auth_adfs import backend as adfs_backend
from django_auth_adfs.config import settings as adfs_settings
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from resilience.integrations.entra.backend import ResilientAccessTokenAuthentication


class Me(APIView):
    authentication_classes = [ResilientAccessTokenAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"user": request.user.get_username(), "pid": os.getpid(), "provider": id(adfs_backend.provider_config)})


for _name, _value in getattr(settings, "ENTRA_FAKE_IDP", {}).items():
    setattr(adfs_settings, _name, _value)

urlpatterns = [path("me/", Me.as_view())]
