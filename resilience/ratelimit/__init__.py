"""Rate limiting, one concept a module: ``policies`` (rates and ``RATE_LIMITS``), ``identity`` (who is
counted), ``keys`` (where it is stored), ``limiter`` (decisions and fail modes) and ``admission``
(the middleware's check and its 429). DRF throttles build on them in ``resilience.throttling``."""
