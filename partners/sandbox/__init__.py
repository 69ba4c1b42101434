"""The local Suomi.fi stand-in: an OpenID provider for e-Identification and a Valtuudet (YPA) API, with test people.

Installed only when SUOMIFI_SANDBOX is on; never in production (the settings refuse it with DEBUG off unless
SUOMIFI_SANDBOX_PUBLIC_DEMO says this is a public demo, and without Authlib installed). No models, no migrations:
codes, tokens and sessions live in Django's cache. Its pages' templates are its own (templates/sandbox/ here), its
tests are under tests/partners/sandbox/, and its dependency Authlib is only in requirements/sandbox.txt (and the dev
requirements). Nothing outside it and its tests imports it: it may import the product (the demo data gives it its
demo partner and organisations), never the other way round (tests/partners/test_sandbox_apart.py).
"""
