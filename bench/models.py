"""The floor's table (bench/urls.py): one small row per floor request. Installed only by the benchmarks' settings
(bench/settings.py), so it exists only in their throw-away database."""

from django.db import models


class FloorRow(models.Model):
    user_id = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"floor row {self.pk}"
