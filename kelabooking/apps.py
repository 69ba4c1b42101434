from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class KelabookingConfig(AppConfig):
    name = "kelabooking"
    verbose_name = _("Messages")
