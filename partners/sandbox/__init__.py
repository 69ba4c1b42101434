"""The local Suomi.fi stand-in: an OpenID provider for e-Identification and a Valtuudet (YPA) API, with test people.

Installed only when SUOMIFI_SANDBOX is on; never in production (the system check sandbox.E001 refuses it with DEBUG
off unless SUOMIFI_SANDBOX_PUBLIC_DEMO says this is a public demo). No models, no migrations: codes, tokens and
sessions live in Django's cache.
"""
