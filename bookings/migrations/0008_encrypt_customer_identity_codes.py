"""Customers' identity codes encrypted at rest, with a keyed index for look-ups (kelabooking/crypto.py).

The plain column is copied into an encrypted one and its HMAC index, then dropped; the encrypted column takes its
name. Reversible: going back decrypts into a plain column again (with the keys still configured).
"""

from django.db import migrations, models

import kelabooking.fields


def encrypt_codes(apps, schema_editor):
    from kelabooking import crypto

    Customer = apps.get_model("bookings", "Customer")
    for customer in Customer.objects.only("pk", "identity_code").iterator(chunk_size=500):
        Customer.objects.filter(pk=customer.pk).update(
            identity_code_encrypted=customer.identity_code, identity_code_digest=crypto.digest(customer.identity_code)
        )


def decrypt_codes(apps, schema_editor):
    Customer = apps.get_model("bookings", "Customer")
    for customer in Customer.objects.only("pk", "identity_code_encrypted").iterator(chunk_size=500):
        Customer.objects.filter(pk=customer.pk).update(identity_code=customer.identity_code_encrypted)


class Migration(migrations.Migration):

    dependencies = [
        ("bookings", "0007_add_booking_sequence"),
    ]

    operations = [
        migrations.AddField(
            model_name="customer",
            name="identity_code_encrypted",
            field=kelabooking.fields.EncryptedIdentityCodeField(null=True, verbose_name="personal identity code"),
        ),
        migrations.AddField(
            model_name="customer",
            name="identity_code_digest",
            field=kelabooking.fields.IdentityCodeDigestField(null=True, verbose_name="identity code index"),
        ),
        # Nullable before it goes, so that going back can add it again to a table with rows.
        migrations.AlterField(
            model_name="customer",
            name="identity_code",
            field=models.CharField(max_length=11, null=True, verbose_name="personal identity code"),
        ),
        migrations.RunPython(encrypt_codes, decrypt_codes, elidable=False),
        migrations.RemoveField(model_name="customer", name="identity_code"),
        migrations.RenameField(model_name="customer", old_name="identity_code_encrypted", new_name="identity_code"),
        migrations.AlterField(
            model_name="customer",
            name="identity_code",
            field=kelabooking.fields.EncryptedIdentityCodeField(verbose_name="personal identity code"),
        ),
        migrations.AlterField(
            model_name="customer",
            name="identity_code_digest",
            field=kelabooking.fields.IdentityCodeDigestField(unique=True, verbose_name="identity code index"),
        ),
    ]
