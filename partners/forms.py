from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class TermsForm(forms.Form):
    consent = forms.BooleanField(
        label=_(
            "I confirm that the customer has given me permission to book a time for them and to check their contact "
            "details, and I accept the terms above."
        ),
        error_messages={"required": _("Confirm the customer's permission and accept the terms to continue.")},
    )
