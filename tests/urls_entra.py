from django.urls import path
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from resilience.integrations.entra.backend import ResilientAccessTokenAuthentication


class Me(APIView):
    authentication_classes = [ResilientAccessTokenAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"user": request.user.get_username()})


urlpatterns = [path("me/", Me.as_view())]
