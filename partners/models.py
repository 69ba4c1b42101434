from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """Everyone who signs in.

    FPA staff are ordinary staff users of the admin. Partner caseworkers sign in through Suomi.fi and are
    matched on their personal identity code (added with the sign-in), never on e-mail.
    """

    class Meta(AbstractUser.Meta):
        verbose_name = _("user")
        verbose_name_plural = _("users")
        swappable = "AUTH_USER_MODEL"
