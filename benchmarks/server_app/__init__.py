"""The Django project that ``benchmarks/server.py`` runs in gunicorn: one view, three configurations
(``BENCH_SERVER_CONFIG``: ``none``, ``resilience`` or ``drf``; see settings.py)."""
