"""FPA staff sign-in to the admin through Kela's own identity provider (Entra ID, AD FS, Keycloak: OpenID Connect).

Here, in the partners app, because the partners app owns who is acting: the `User`, the audit trail that every
sign-in, refusal and sign-out goes into, and the session timeouts; `kelabooking/` may import no app, and the staff
sign-in needs all three. It is a package of its own beside the partners' Suomi.fi client (partners/suomifi.py) so that
the two clients share the protocol code of partners/oidc.py and nothing else:

- `oidc`: mozilla-django-oidc's backend, subclassed to read the STAFF_OIDC_* settings (`get_settings`), to answer
  only at the staff callback, and to require MFA; the provider's logout address (RP-initiated logout);
- `services`: the rules: groups set from the claim at every sign-in, `is_staff` from having any, superuser only by a
  named claim value; the audit events of staff sign-in;
- `passwords`: the password backend that, in production with staff sign-in configured, lets only break-glass
  accounts in;
- `views`: the sign-in's start and callback (with a state store of their own), the refusal page, the admin's
  sign-out.
"""
