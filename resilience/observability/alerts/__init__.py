"""In-app alerts (``RESILIENCE["ALERTS"]``): rules turn events into incidents, notifiers send one
notice when an incident opens and one when it resolves, deduplicated across workers through Redis.

``rules`` (what matches), ``settings`` (the parsed setting), ``incidents`` (dedup state),
``notice`` (the plain data sent), ``notifiers`` (email, webhook, SNS), ``dispatch`` (the receiver,
the bounded queue and the sending thread).
"""
