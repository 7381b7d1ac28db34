"""The WSGI application gunicorn serves: ``benchmarks.server_app.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.server_app.settings")
application = get_wsgi_application()
