"""Indexes on the key id a customer's stored identity code and keyed index start with (kelabooking/fields.py); the
values themselves get their key ids in partners 0008, with the other tables'."""

import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0010_add_customer_last_opened_at"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="customer",
            index=models.Index(django.db.models.functions.text.Left("identity_code", 8), name="customer_code_key_idx"),
        ),
        migrations.AddIndex(
            model_name="customer",
            index=models.Index(
                django.db.models.functions.text.Left("identity_code_digest", 8), name="customer_digest_key_idx"
            ),
        ),
    ]
