"""``Circuit``: the admin page and permissions of live breakers; ``CircuitEvent``: their history."""

from django.db import models


class Circuit(models.Model):
    """Not a table: breakers live in the store. The model gives the admin page and its permissions
    (``resilience.view_circuit`` to look, ``resilience.change_circuit`` to reset or force open)."""

    name = models.CharField(max_length=200, primary_key=True)

    class Meta:
        managed = False
        default_permissions = ("view", "change")
        verbose_name = "circuit"
        verbose_name_plural = "circuits"

    def __str__(self) -> str:
        return self.name


class CircuitEvent(models.Model):
    """One breaker transition or manual action, written asynchronously by ``resilience.observability.history``."""

    breaker = models.CharField(max_length=200, db_index=True)
    old_state = models.CharField(max_length=20)
    new_state = models.CharField(max_length=20)
    reason = models.CharField(max_length=100, blank=True)
    actor = models.CharField(max_length=150, blank=True, help_text="Who acted by hand; empty for automatic transitions.")
    failure_rate = models.FloatField(null=True)
    slow_rate = models.FloatField(null=True)
    calls = models.IntegerField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.breaker}: {self.old_state} → {self.new_state}"
