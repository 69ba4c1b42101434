"""The Suomi.fi relying party against a provider at the protocol level: every check the brief names, each able
to fail the login, and no failure ever a 500."""

from __future__ import annotations

import logging
import time
from urllib.parse import unquote

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey

from kelabooking import crypto
from kelabooking.logging import MASK
from partners import context, keys
from partners.models import AuditEvent, User
from tests.partners.provider import (
    IDENTITY_CLAIM,
    OTHER_TEST_CODE,
    REAL_FORM_CODE,
    TEST_CODE,
    FakeProvider,
    authorization_params,
    end_session_form,
    finish_login,
    login_events,
    new_key,
    s256,
    start_login,
    url,
)

pytestmark = pytest.mark.django_db


def test_login__start__redirects_with_state_nonce_pkce_acr_and_language(client, op: FakeProvider, settings) -> None:
    params = start_login(client, op, language="sv")
    assert params["response_type"] == "code"
    assert params["client_id"] == op.client_id
    assert params["redirect_uri"] == "http://testserver/oidc/callback/"
    assert len(params["state"]) >= 32
    assert len(params["nonce"]) >= 32
    assert params["code_challenge_method"] == "S256"
    assert params["acr_values"] == " ".join(settings.OIDC_ACR_VALUES)
    assert params["ui_locales"] == "sv"
    assert "openid" in params["scope"].split()
    assert "prompt" not in params


def test_login__new_customer_start__asks_for_fresh_identification(client, op: FakeProvider) -> None:
    response = client.get(url("partners:login") + "?prompt=login")
    assert authorization_params(response)["prompt"] == "login"


def test_login__full_round_trip__creates_partner_matched_on_identity_code(client, op: FakeProvider) -> None:
    params = start_login(client, op)
    response = finish_login(client, params)
    assert response.status_code == 302
    assert response["Location"] == url("partners:work", "fi")
    user = User.objects.get()
    assert (user.identity_code, user.first_name, user.last_name) == (TEST_CODE, "Maija", "Meikäläinen")
    assert user.username.startswith("partner-")
    assert TEST_CODE not in user.username
    assert not user.has_usable_password()
    assert client.get(url("partners:work")).status_code == 200
    [event] = login_events(AuditEvent.Action.LOGIN)
    assert (event.actor, event.actor_identity_code, event.outcome) == (user, TEST_CODE, AuditEvent.Outcome.SUCCESS)
    # PKCE: the verifier sent to the token endpoint answers the challenge of the authorization request.
    [token_request] = op.token_requests
    assert s256(token_request.form["code_verifier"]) == params["code_challenge"]
    assert token_request.form["redirect_uri"] == "http://testserver/oidc/callback/"
    assert token_request.authorization.type == "basic"
    assert token_request.authorization.username == op.client_id
    # RFC 6749 §2.3.1: the secret is form-encoded inside the Basic header.
    assert unquote(token_request.authorization.password) == "s3cret/with:odd&chars"
    assert "client_secret" not in token_request.form


def test_login__second_login__updates_names_and_reuses_the_user(client, op: FakeProvider) -> None:
    existing = User.objects.create(username="partner-x", identity_code=TEST_CODE, first_name="Old", email="x@y.fi")
    op.claims_override = {"given_name": "Maija Liisa", "family_name": "Uusinimi", "email": "other@example.org"}
    finish_login(client, start_login(client, op))
    assert User.objects.count() == 1
    existing.refresh_from_db()
    assert (existing.first_name, existing.last_name) == ("Maija Liisa", "Uusinimi")


def test_login__names_with_a_control_character__kept_as_they_were_not_500(client, op: FakeProvider) -> None:
    """A NUL in a signed name claim reached PostgreSQL, which refuses it: the login answered 500."""
    existing = User.objects.create(username="partner-x", identity_code=TEST_CODE, first_name="Maija", last_name="M")
    op.claims_override = {"given_name": "Mai\x00ja", "family_name": "Uusi\x07nimi"}
    finish_login(client, start_login(client, op))
    existing.refresh_from_db()
    assert (existing.first_name, existing.last_name) == ("Maija", "M")
    assert client.session["_auth_user_id"] == str(existing.pk)


def test_login__same_person_identifies_again__customer_and_organisation_start_over(client, op: FakeProvider) -> None:
    """Only a new identification unlocks the customer: Django's login keeps the session's data for the same user, so
    the last login's customer, organisation and draft used to survive it."""
    finish_login(client, start_login(client, op))
    session = client.session
    session[context.SESSION_KEY] = {
        "organisation_business_id": "0201256-6",
        "organisation_name": "Helsingin kaupunki",
        "terms_accepted_at": "2026-12-02T10:00:00+00:00",
        "customer_id": 7,
    }
    session[context.DRAFT_KEY] = {"service_line_id": 1}
    session.save()

    assert finish_login(client, start_login(client, op))["Location"] == url("partners:work", "fi")

    assert client.session.session_key != session.session_key  # a new identification, a new key (partners/sessions.py)

    assert context.SESSION_KEY not in client.session
    assert context.DRAFT_KEY not in client.session
    assert len(login_events(AuditEvent.Action.LOGIN)) == 2


def test_login__same_email_other_identity_code__is_another_user(client, op: FakeProvider) -> None:
    User.objects.create(username="someone", identity_code=OTHER_TEST_CODE, email="maija@example.org")
    op.claims_override = {"email": "maija@example.org"}
    finish_login(client, start_login(client, op))
    assert User.objects.with_identity_code(TEST_CODE).exists()
    assert User.objects.count() == 2


def _mutations() -> dict[str, tuple[dict, str]]:
    now = int(time.time())
    return {
        "wrong_audience": ({"aud": "someone-else"}, "wrong_audience"),
        "several_audiences_without_azp": ({"aud": ["kelabooking-test", "other"]}, "wrong_audience"),
        "wrong_issuer": ({"iss": "https://evil.example/op"}, "wrong_issuer"),
        "expired": ({"exp": now - 3600, "iat": now - 7200}, "expired_token"),
        "issued_in_the_future": ({"iat": now + 3600}, "invalid_token"),
        "replayed_nonce": ({"nonce": "a-nonce-from-an-earlier-login"}, "nonce_mismatch"),
        "bad_acr": ({"acr": "http://eidas.europa.eu/LoA/low"}, "acr_not_allowed"),
        "missing_acr": ({"acr": None}, "acr_not_allowed"),
        "missing_identity_code": ({IDENTITY_CLAIM: None}, "missing_claim"),
        "bad_identity_code": ({IDENTITY_CLAIM: "010190-999X"}, "invalid_identity_code"),
        "missing_exp": ({"exp": None}, "invalid_token"),
    }


@pytest.mark.parametrize("case", list(_mutations()))
def test_login__token_that_must_not_pass__refused_with_page_and_audit(client, op: FakeProvider, case: str) -> None:
    claims, reason = _mutations()[case]
    op.claims_override = claims
    response = finish_login(client, start_login(client, op))
    assert response.status_code == 400
    assert '<html lang="fi">' in response.content.decode()
    assert f'href="{url("partners:login")}"' in response.content.decode()  # a way to try again
    assert not User.objects.exists()
    assert "_auth_user_id" not in client.session
    [event] = login_events(AuditEvent.Action.LOGIN_FAILED)
    assert event.details == {"reason": reason}


def test_login__tampered_signature__refused(client, op: FakeProvider) -> None:
    op.signing_key = new_key(op.key.kid)  # same kid, another key: the signature cannot verify
    response = finish_login(client, start_login(client, op))
    assert response.status_code == 400
    assert login_events(AuditEvent.Action.LOGIN_FAILED)[0].details == {"reason": "invalid_signature"}


def test_login__token_signed_with_none_or_hs256__refused(client, op: FakeProvider) -> None:
    op.header_override = {"alg": "HS256"}
    params = start_login(client, op)
    op.signing_key = None
    # joserfc refuses to sign HS256 with an RSA key, so hand-craft the token the provider returns.
    from joserfc.jwk import OctKey

    hs_token = jose_jwt.encode({"alg": "HS256"}, {"iss": op.issuer, "aud": op.client_id}, OctKey.import_key("k" * 32))
    op.id_token = lambda nonce: hs_token  # type: ignore[method-assign]
    response = finish_login(client, params)
    assert response.status_code == 400
    assert login_events(AuditEvent.Action.LOGIN_FAILED)[0].details == {"reason": "invalid_token"}


def test_login__jwks__cached_by_kid_and_refetched_on_rotation(client, op: FakeProvider, httpserver) -> None:
    finish_login(client, start_login(client, op))
    client.logout()
    finish_login(client, start_login(client, op))
    jwks_fetches = [request for request, _ in httpserver.log if request.path == "/op/jwks"]
    assert len(jwks_fetches) == 1  # the second login used the cached key

    rotated = new_key("op-key-2")
    op.key, op.published = rotated, [rotated]
    client.logout()
    response = finish_login(client, start_login(client, op))
    assert response.status_code == 302  # unknown kid → one refetch → verified
    assert len([request for request, _ in httpserver.log if request.path == "/op/jwks"]) == 2


def test_login__unknown_kid_even_after_refetch__refused(client, op: FakeProvider) -> None:
    op.header_override = {"kid": "not-published"}
    response = finish_login(client, start_login(client, op))
    assert response.status_code == 400
    assert login_events(AuditEvent.Action.LOGIN_FAILED)[0].details == {"reason": "invalid_token"}


def test_login__back_button_without_state__translated_page_not_500(client, op: FakeProvider) -> None:
    start_login(client, op)
    response = client.get("/oidc/callback/", {"code": "x", "state": "not-in-this-session"})
    assert response.status_code == 400
    assert login_events(AuditEvent.Action.LOGIN_FAILED)[0].details == {"reason": "state_missing"}


def test_login__replayed_callback__refused_the_second_time(client, op: FakeProvider) -> None:
    params = start_login(client, op)
    assert finish_login(client, params).status_code == 302
    client.logout()
    response = finish_login(client, params)
    assert response.status_code == 400
    assert login_events(AuditEvent.Action.LOGIN_FAILED)[0].details == {"reason": "state_missing"}


def test_login__cancelled_at_provider__page_and_refused_event(client, op: FakeProvider) -> None:
    params = start_login(client, op, language="en")
    response = client.get("/oidc/callback/", {"error": "access_denied", "state": params["state"]})
    assert response.status_code == 400
    assert "Identification was cancelled" in response.content.decode()
    [event] = login_events(AuditEvent.Action.LOGIN_FAILED)
    assert (event.outcome, event.details) == (
        AuditEvent.Outcome.REFUSED,
        {"reason": "cancelled", "provider_error": "access_denied"},
    )


def test_login__token_endpoint_error__page_not_500(client, op: FakeProvider) -> None:
    op.token_status = 500
    response = finish_login(client, start_login(client, op))
    assert response.status_code == 400
    assert login_events(AuditEvent.Action.LOGIN_FAILED)[0].details == {"reason": "token_refused"}


def test_login__provider_unreachable__page_at_start(client, settings) -> None:
    settings.OIDC_OP_ISSUER = "http://127.0.0.1:9/op"
    settings.OIDC_OP_DISCOVERY_URL = "http://127.0.0.1:9/op/.well-known/openid-configuration"
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = ""
    response = client.get(url("partners:login", "en"))
    assert response.status_code == 503
    assert "cannot be reached" in response.content.decode()
    assert login_events(AuditEvent.Action.LOGIN_FAILED)[0].details == {"reason": "provider_unreachable"}


def test_login__slow_provider__times_out(client, op: FakeProvider, settings, httpserver) -> None:
    settings.OIDC_TIMEOUT = 1
    params = start_login(client, op)

    def slow(request):
        time.sleep(2.5)
        return op._token(request)

    httpserver.clear_all_handlers()
    httpserver.expect_request("/op/token", method="POST").respond_with_handler(slow)
    started = time.monotonic()
    response = finish_login(client, params)
    assert time.monotonic() - started < 2.4
    assert response.status_code == 400
    assert login_events(AuditEvent.Action.LOGIN_FAILED)[0].details == {"reason": "provider_unreachable"}


def test_login__temporary_identity_code__refused_unless_allowed(client, op: FakeProvider, settings) -> None:
    settings.ALLOW_TEST_IDENTITY_CODES = False
    response = finish_login(client, start_login(client, op))
    assert response.status_code == 400
    op.claims_override = {IDENTITY_CLAIM: REAL_FORM_CODE}
    assert finish_login(client, start_login(client, op)).status_code == 302


def test_login__identity_code_claim_name__is_a_setting(client, op: FakeProvider, settings) -> None:
    settings.OIDC_CLAIM_IDENTITY_CODE = ["national_id_num"]
    op.claims_override = {IDENTITY_CLAIM: None, "national_id_num": OTHER_TEST_CODE}
    assert finish_login(client, start_login(client, op)).status_code == 302
    assert User.objects.get().identity_code == OTHER_TEST_CODE


def test_login__private_key_jwt__token_request_carries_a_signed_assertion(client, op: FakeProvider, settings) -> None:
    settings.OIDC_RP_CLIENT_AUTH_METHOD = "private_key_jwt"
    assert finish_login(client, start_login(client, op)).status_code == 302
    [token_request] = op.token_requests
    assert token_request.authorization is None
    assert token_request.form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    public = RSAKey.import_key(keys.signing_key().as_dict(private=False))
    assertion = jose_jwt.decode(token_request.form["client_assertion"], public)
    assert assertion.claims["iss"] == assertion.claims["sub"] == op.client_id
    assert assertion.claims["aud"] == f"{op.issuer}/token"
    assert assertion.claims["exp"] - assertion.claims["iat"] <= 60
    assert assertion.header["kid"] == keys.signing_key().kid


def test_login__encrypted_id_token__decrypted_with_our_key(client, op: FakeProvider, settings) -> None:
    settings.OIDC_RP_ID_TOKEN_ENCRYPTED = True
    op.encrypt = True
    assert finish_login(client, start_login(client, op)).status_code == 302
    # The signed inner token is kept for id_token_hint, encrypted: it carries the identity code.
    assert crypto.decrypt(client.session["oidc_id_token"]).count(".") == 2


def test_login__plain_token_when_encryption_required__refused(client, op: FakeProvider, settings) -> None:
    settings.OIDC_RP_ID_TOKEN_ENCRYPTED = True
    assert finish_login(client, start_login(client, op)).status_code == 400


def test_login__userinfo_about_another_subject__refused(client, op: FakeProvider) -> None:
    op.userinfo = {"sub": "somebody-else"}
    assert finish_login(client, start_login(client, op)).status_code == 400


def test_logout__post__ends_session_and_posts_to_end_session_endpoint_never_a_url(client, op: FakeProvider) -> None:
    """The ID token, sent as id_token_hint, carries the identity code: it went to the provider in the redirect's
    query string (the browser's history, the provider's access log). Now the browser POSTs it."""
    finish_login(client, start_login(client, op))
    id_token = crypto.decrypt(client.session["oidc_id_token"])
    assert client.get(url("partners:logout")).status_code == 405
    response = client.post(url("partners:logout", "sv"))

    action, params = end_session_form(response)
    assert action == f"{op.issuer}/logout"
    assert params["id_token_hint"] == id_token
    assert params["client_id"] == op.client_id
    assert "csrfmiddlewaretoken" not in params  # our CSRF token is not the provider's to see
    assert "no-store" in response["Cache-Control"]
    assert "_auth_user_id" not in client.session
    assert login_events(AuditEvent.Action.LOGOUT)[0].actor == User.objects.get()


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_logout__any_language__one_return_address_and_back_in_that_language(
    client, op: FakeProvider, language: str
) -> None:
    """One post_logout_redirect_uri to register with the provider; the language waits in the session."""
    finish_login(client, start_login(client, op, language=language))

    _action, params = end_session_form(client.post(url("partners:logout", language)))

    assert params["post_logout_redirect_uri"] == "http://testserver/fi/logged-out/"
    returned = client.get("/fi/logged-out/")
    if language == "fi":
        assert returned.status_code == 200
    else:
        assert returned.status_code == 302
        assert returned["Location"] == url("partners:logged-out", language)
        page = client.get(returned["Location"])
        assert page.status_code == 200
        assert f'<html lang="{language}">' in page.content.decode()
    assert client.get("/fi/logged-out/").status_code == 200  # once only: later visits stay where they are


def test_logout__provider_without_end_session_endpoint__our_page(client, op: FakeProvider) -> None:
    op.metadata = {"end_session_endpoint": None}
    finish_login(client, start_login(client, op))

    response = client.post(url("partners:logout", "sv"))

    assert response["Location"] == url("partners:logged-out", "sv")
    assert client.get(response["Location"]).status_code == 200


def test_logout__provider_unreachable__our_page_not_500(client, op: FakeProvider, settings) -> None:
    finish_login(client, start_login(client, op))
    settings.OIDC_OP_DISCOVERY_URL = "http://127.0.0.1:9/op/.well-known/openid-configuration"
    cache.clear()

    response = client.post(url("partners:logout"))

    assert response["Location"] == url("partners:logged-out")
    assert "_auth_user_id" not in client.session


def test_logout__valtuudet_down__still_logs_out(client, op: FakeProvider, settings) -> None:
    finish_login(client, start_login(client, op))
    session = client.session
    session["valtuudet"] = {"session_id": "s-1"}
    session.save()
    settings.VALTUUDET_BASE_URL = "http://127.0.0.1:9/valtuudet"

    response = client.post(url("partners:logout"))

    assert end_session_form(response)[0] == f"{op.issuer}/logout"
    assert "_auth_user_id" not in client.session
    assert len(login_events(AuditEvent.Action.LOGOUT)) == 1


def test_logout__nobody_signed_in__our_page(client, op: FakeProvider) -> None:
    response = client.post(url("partners:logout", "sv"))

    assert response["Location"] == url("partners:logged-out", "sv")


def test_jwks__published__public_signing_and_encryption_keys_only(client) -> None:
    document = client.get("/.well-known/jwks.json").json()
    assert sorted(key["use"] for key in document["keys"]) == ["enc", "sig"]
    assert all("d" not in key and "p" not in key for key in document["keys"])


def test_jwks__key_generation_off__keys_a_development_run_left_are_never_read_or_published(
    client, settings, rp_key_dir
) -> None:
    keys.signing_key()  # a development run generates both under the key folder
    keys.encryption_key()
    assert {"rp-signing.pem", "rp-encryption.pem"} <= {path.name for path in rp_key_dir.iterdir()}
    settings.OIDC_RP_GENERATE_KEYS = False  # production: the keys come from the environment, or there are none
    keys.signing_key.cache_clear()
    keys.encryption_key.cache_clear()

    assert client.get("/.well-known/jwks.json").json() == {"keys": []}
    with pytest.raises(ImproperlyConfigured, match="rp-signing.pem"):
        keys.signing_key()


def test_login__whole_flow__no_identity_code_in_any_log_record(client, op: FakeProvider, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    finish_login(client, start_login(client, op))
    client.post(url("partners:logout"))
    op.claims_override = {"aud": "wrong"}
    finish_login(client, start_login(client, op))
    assert caplog.records
    for record in caplog.records:
        # Records are masked as they are made (kelabooking/logging.py): a code logged at all shows as the mask.
        for text in (record.getMessage(), record.exc_text or ""):
            assert TEST_CODE not in text
            assert MASK not in text


def _generate_key_for_race(key_dir: str, barrier, results) -> None:
    from django.conf import settings as django_settings

    django_settings.OIDC_RP_KEY_DIR = key_dir
    barrier.wait(timeout=10)
    try:
        key = keys.load_or_generate_rsa_key("", generated_name="rp-signing.pem")
    except Exception as error:  # reported, so the assertion shows what a worker raised
        results.put(f"error: {error!r}")
    else:
        results.put(key.thumbprint())


def test_generated_key__workers_starting_together__all_use_one_key(tmp_path) -> None:
    import multiprocessing

    forked = multiprocessing.get_context("fork")
    barrier, results = forked.Barrier(4), forked.Queue()
    workers = [forked.Process(target=_generate_key_for_race, args=(str(tmp_path), barrier, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    thumbprints = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)

    on_disk = RSAKey.import_key((tmp_path / "rp-signing.pem").read_bytes()).thumbprint()
    assert thumbprints == [on_disk] * 4
    assert [path.name for path in tmp_path.iterdir()] == ["rp-signing.pem"]
