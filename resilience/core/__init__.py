"""Pure engines: no Django, no Redis. Adapters at the edge feed them time and storage."""
