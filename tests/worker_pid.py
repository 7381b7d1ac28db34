"""``WorkerPidMiddleware``: every response names the process that answered (``X-Worker-Pid``), so a
test driving a multi-worker gunicorn can tell the workers apart. Put it first in ``MIDDLEWARE``:
responses that other middleware answer by themselves (429, 503) carry it too."""

import os


class WorkerPidMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response["X-Worker-Pid"] = str(os.getpid())
        return response
