"""Where breaker state lives: ``memory`` (one process) or ``redis`` (every worker)."""
