"""FPA staff sign in to the admin through Kela's identity provider: a real OIDC conversation (discovery, JWKS, token
endpoint over HTTP; signed ID tokens) with the staff provider, beside the partners' Suomi.fi provider on the same
server. MFA required, groups from the claim at every sign-in, refusals audited, the two clients apart."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import base_user
from django.contrib.auth.models import Group
from django.core import checks
from django.test import Client, RequestFactory
from joserfc import jwt
from joserfc.jwk import RSAKey

from kelabooking import ratelimit
from partners import keys
from partners.middleware import STAFF_LAST_SEEN, STAFF_LOGIN_AT
from partners.models import AuditEvent, User
from partners.staff.oidc import ID_TOKEN_SESSION_KEY, StaffBackend
from partners.suomifi import SuomiFiBackend
from tests.partners.provider import (
    STAFF_SUBJECT,
    FakeProvider,
    StaffProvider,
    finish_login,
    finish_staff_login,
    s256,
    start_login,
    start_staff_login,
)

pytestmark = pytest.mark.django_db

AUDIT = "Audit readers"
CAPACITY = "Phone service capacity administrators"
REGISTRY = "Registry administrators"


@pytest.fixture
def client() -> Client:
    return Client(headers={"accept-language": "en"})


def refusals() -> list[dict]:
    return list(
        AuditEvent.objects.filter(action=AuditEvent.Action.STAFF_LOGIN_REFUSED)
        .order_by("pk")
        .values_list("details", flat=True)
    )


def sign_in(client: Client, op: StaffProvider, **kwargs):
    return finish_staff_login(client, start_staff_login(client, op, **kwargs))


def assert_refused(response, reason: str, status: int = 400) -> None:
    assert response.status_code == status, response.content
    assert "_auth_user_id" not in response.wsgi_request.session
    assert refusals()[-1] == {"reason": reason}
    assert 'href="/admin/login/"' in response.content.decode()  # a way back


# --- Signing in -----------------------------------------------------------------------------------------------


def test_staff_sign_in__mfa_and_a_mapped_group__signed_in_with_exactly_that_group(client, staff_op) -> None:
    response = sign_in(client, staff_op)

    assert response.status_code == 302, refusals()
    assert response["Location"] == "/admin/"
    user = User.objects.get(staff_subject=STAFF_SUBJECT)
    assert (user.is_staff, user.is_superuser, user.has_usable_password()) == (True, False, False)
    assert (user.first_name, user.last_name, user.email) == ("Sanna", "Sisäinen", "sanna.sisainen@kela.example")
    assert list(user.groups.values_list("name", flat=True)) == [AUDIT]
    assert client.get("/admin/partners/auditevent/").status_code == 200
    assert client.get("/admin/bookings/booking/").status_code == 403
    [event] = AuditEvent.objects.filter(action=AuditEvent.Action.STAFF_LOGIN)
    assert (event.actor, event.details) == (user, {"method": "oidc", "groups": [AUDIT], "superuser": False})


def test_staff_sign_in__request__code_flow_with_pkce_state_nonce_for_the_staff_client(client, staff_op) -> None:
    params = start_staff_login(client, staff_op)

    assert params["client_id"] == "kelabooking-staff-test"
    assert params["redirect_uri"] == "http://testserver/staff/oidc/callback/"
    assert params["code_challenge_method"] == "S256"
    assert params["scope"] == "openid profile email"
    assert params["state"] in client.session["staff_logins"]
    assert params["nonce"] == client.session["staff_logins"][params["state"]]["nonce"]
    verifier = client.session["staff_logins"][params["state"]]["code_verifier"]
    assert params["code_challenge"] == s256(verifier)


def test_staff_sign_in__token_request__client_secret_basic_form_encoded(client, staff_op) -> None:
    sign_in(client, staff_op)

    [request] = staff_op.token_requests
    assert request.authorization.username == "kelabooking-staff-test"
    assert request.authorization.password == "staff%20s3cret%2Fwith%3Aodd%26chars"  # RFC 6749 §2.3.1
    assert request.form["code_verifier"]
    assert "client_secret" not in request.form


def test_staff_sign_in__private_key_jwt__assertion_names_the_staff_client(client, staff_op, settings) -> None:
    settings.STAFF_OIDC_RP_CLIENT_AUTH_METHOD = "private_key_jwt"

    assert sign_in(client, staff_op).status_code == 302

    [request] = staff_op.token_requests
    public = RSAKey.import_key(keys.signing_key().as_dict(private=False))
    claims = jwt.decode(request.form["client_assertion"], public, algorithms=["RS256"]).claims
    assert (claims["iss"], claims["sub"], claims["aud"]) == (
        staff_op.client_id,
        staff_op.client_id,
        f"{staff_op.issuer}/token",
    )
    assert request.authorization is None


def test_staff_sign_in__client_secret_post__secret_in_the_form(client, staff_op, settings) -> None:
    settings.STAFF_OIDC_RP_CLIENT_AUTH_METHOD = "client_secret_post"

    assert sign_in(client, staff_op).status_code == 302
    assert staff_op.token_requests[0].form["client_secret"] == "staff s3cret/with:odd&chars"


def test_staff_sign_in__next__returns_to_the_admin_page_asked_for(client, staff_op) -> None:
    response = sign_in(client, staff_op, next_url="/admin/partners/auditevent/")

    assert response["Location"] == "/admin/partners/auditevent/"


def test_staff_sign_in__again_with_a_group_removed__the_group_is_removed(client, staff_op) -> None:
    staff_op.groups = ["kb-audit-readers", "kb-capacity-admins", "kb-registry-admins", "not-ours"]
    sign_in(client, staff_op)
    user = User.objects.get(staff_subject=STAFF_SUBJECT)
    assert set(user.groups.values_list("name", flat=True)) == {AUDIT, CAPACITY, REGISTRY}
    user.groups.add(Group.objects.get(name="Phone service customer service"))  # ticked by hand in the admin
    client.logout()

    staff_op.groups = ["kb-capacity-admins"]
    sign_in(client, staff_op)

    assert list(user.groups.values_list("name", flat=True)) == [CAPACITY]
    assert client.get("/admin/partners/auditevent/").status_code == 403
    assert client.get("/admin/bookings/slot/").status_code == 200


@pytest.mark.parametrize(("named", "superuser"), [("", False), ("kb-superusers", True), ("other-value", False)])
def test_staff_sign_in__superuser__only_from_the_claim_value_a_setting_names(
    client, staff_op, settings, named: str, superuser: bool
) -> None:
    settings.STAFF_OIDC_SUPERUSER_VALUE = named
    staff_op.groups = ["kb-audit-readers", "kb-superusers"]

    sign_in(client, staff_op)

    assert User.objects.get(staff_subject=STAFF_SUBJECT).is_superuser is superuser


def test_staff_sign_in__acr_named_as_mfa__accepted_without_amr(client, staff_op, settings) -> None:
    settings.STAFF_OIDC_MFA_ACR = ["gold"]
    staff_op.amr = None
    staff_op.claims_override = {"acr": "gold"}

    assert sign_in(client, staff_op).status_code == 302


def test_staff_sign_in__userinfo__completes_the_id_token_but_never_overrides_it(client, staff_op) -> None:
    staff_op.claims_override = {"email": None}
    staff_op.userinfo = {"sub": STAFF_SUBJECT, "email": "from.userinfo@kela.example", "groups": ["kb-registry-admins"]}

    sign_in(client, staff_op)

    user = User.objects.get(staff_subject=STAFF_SUBJECT)
    assert user.email == "from.userinfo@kela.example"
    assert list(user.groups.values_list("name", flat=True)) == [AUDIT]


# --- Refusals -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("amr", [["pwd"], None, "pwd", ["otp"]], ids=["password", "no-amr", "string", "one-factor"])
def test_staff_sign_in__no_mfa__refused_with_a_page_and_audited(client, staff_op, amr) -> None:
    staff_op.amr = amr

    response = sign_in(client, staff_op)

    assert_refused(response, "mfa_required", status=403)
    assert "Multi-factor authentication is required" in response.content.decode()
    assert not User.objects.filter(staff_subject=STAFF_SUBJECT).exists()


def test_staff_sign_in__unknown_group_only__refused_and_an_existing_account_loses_the_admin(client, staff_op) -> None:
    sign_in(client, staff_op)
    user = User.objects.get(staff_subject=STAFF_SUBJECT)
    client.logout()
    staff_op.groups = ["kela-all-staff"]

    response = sign_in(client, staff_op)

    assert_refused(response, "no_staff_group", status=403)
    assert "You have no access to the administration" in response.content.decode()
    user.refresh_from_db()
    assert (user.is_staff, list(user.groups.all())) == (False, [])
    assert AuditEvent.objects.filter(action=AuditEvent.Action.STAFF_LOGIN_REFUSED).get().actor == user


def test_staff_sign_in__unknown_group_only__no_account_is_made(client, staff_op) -> None:
    staff_op.groups = ["kela-all-staff"]

    assert_refused(sign_in(client, staff_op), "no_staff_group", status=403)
    assert not User.objects.exists()


def test_staff_sign_in__names_and_a_group_with_control_characters__not_taken_not_500(client, staff_op) -> None:
    """A NUL in a name, an e-mail address or a group value reached PostgreSQL, which refuses it: a 500."""
    staff_op.claims_override = {
        "given_name": "San\x00na",
        "email": "sanna\x00@kela.example",
        "groups": ["kb-audit-readers\x00", "kb-audit-readers"],
    }

    response = sign_in(client, staff_op)

    assert response.status_code == 302, refusals()
    user = User.objects.get(staff_subject=STAFF_SUBJECT)
    assert (user.first_name, user.email) == ("", "")
    assert list(user.groups.values_list("name", flat=True)) == [AUDIT]


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "kelabooking-sandbox"}, "wrong_audience"),
        ({"aud": ["kelabooking-staff-test", "another-client"]}, "wrong_audience"),  # more than one, and no azp
        ({"iss": "https://login.example/other-tenant"}, "wrong_issuer"),
        ({"exp": int(time.time()) - 3600}, "expired_token"),
        ({"nonce": "another-login"}, "nonce_mismatch"),
    ],
    ids=["aud-partner-client", "aud-two-without-azp", "iss", "expired", "nonce"],
)
def test_staff_sign_in__id_token_not_for_us__refused(client, staff_op, claims: dict, reason: str) -> None:
    staff_op.claims_override = claims

    assert_refused(sign_in(client, staff_op), reason)
    assert not User.objects.exists()


def test_staff_sign_in__signed_with_an_unpublished_key__refused(client, staff_op) -> None:
    from tests.partners.provider import new_key

    staff_op.signing_key = new_key("staff-op-key-1")

    assert_refused(sign_in(client, staff_op), "invalid_signature")


def test_staff_sign_in__replayed_state__refused_the_second_time(client, staff_op) -> None:
    params = start_staff_login(client, staff_op)
    assert finish_staff_login(client, params).status_code == 302
    client.logout()

    assert_refused(finish_staff_login(client, params), "state_missing")
    assert len(staff_op.token_requests) == 1  # the replay never reached the token endpoint


def test_staff_sign_in__refused_answer__uses_up_its_state(client, staff_op) -> None:
    staff_op.amr = ["pwd"]
    params = start_staff_login(client, staff_op)
    finish_staff_login(client, params)
    staff_op.amr = ["mfa"]

    assert_refused(finish_staff_login(client, params), "state_missing")


def test_staff_sign_in__wrong_iss_in_the_authorization_response__refused_before_the_code_is_used(
    client, staff_op
) -> None:
    params = start_staff_login(client, staff_op)

    assert_refused(finish_staff_login(client, params, iss="https://evil.example/op"), "wrong_issuer")
    assert staff_op.token_requests == []


def test_staff_sign_in__cancelled_at_the_provider__refused_as_cancelled(client, staff_op) -> None:
    params = start_staff_login(client, staff_op)

    response = client.get("/staff/oidc/callback/", {"error": "access_denied", "state": params["state"]})

    assert_refused(response, "cancelled")


def test_staff_sign_in__provider_down__page_not_500(client, staff_op, settings) -> None:
    settings.STAFF_OIDC_OP_DISCOVERY_URL = "http://127.0.0.1:9/.well-known/openid-configuration"

    response = client.get("/staff/login/")

    assert response.status_code == 503
    assert refusals() == [{"reason": "provider_unreachable"}]


# --- The two clients apart ------------------------------------------------------------------------------------


def test_partner_state__at_the_staff_callback__refused(client, op: FakeProvider, staff_op) -> None:
    params = start_login(client, op)

    assert_refused(finish_staff_login(client, params), "state_missing")
    assert op.token_requests == []
    assert staff_op.token_requests == []


def test_staff_state__at_the_partners_callback__refused(client, op: FakeProvider, staff_op) -> None:
    params = start_staff_login(client, staff_op)

    response = finish_login(client, params)

    assert response.status_code == 400
    assert AuditEvent.objects.get(action=AuditEvent.Action.LOGIN_FAILED).details == {"reason": "state_missing"}
    assert op.token_requests == []
    assert staff_op.token_requests == []


def test_partner_suomifi_token__offered_to_the_staff_callback__refused(client, op: FakeProvider, staff_op) -> None:
    staff_op.id_token = lambda *, nonce: op.id_token(nonce=nonce)  # the staff token endpoint answers a Suomi.fi token

    response = sign_in(client, staff_op)

    assert_refused(response, "invalid_token")  # not signed by any key the staff provider publishes
    assert not User.objects.exists()


def test_partner_suomifi_token__signed_with_the_staff_key__still_refused_by_iss_and_aud(
    client, op: FakeProvider, staff_op
) -> None:
    op.key = staff_op.key  # even were the keys shared, the token names another issuer and audience
    staff_op.id_token = lambda *, nonce: op.id_token(nonce=nonce)

    assert_refused(sign_in(client, staff_op), "wrong_issuer")


def test_staff_token__offered_to_the_partners_callback__refused(client, op: FakeProvider, staff_op) -> None:
    op.id_token = lambda *, nonce: staff_op.id_token(nonce=nonce)  # the Suomi.fi token endpoint answers a staff token

    response = finish_login(client, start_login(client, op))

    assert response.status_code == 400
    assert AuditEvent.objects.get(action=AuditEvent.Action.LOGIN_FAILED).details == {"reason": "invalid_token"}
    assert not User.objects.exists()


def test_backends__each_answers_only_at_its_own_callback(settings) -> None:
    factory = RequestFactory()
    at_staff = factory.get("/staff/oidc/callback/", {"code": "c", "state": "s"})
    at_partners = factory.get("/oidc/callback/", {"code": "c", "state": "s"})

    # Neither reaches its provider (none is configured at 127.0.0.1:9): each returns before it would.
    settings.OIDC_OP_DISCOVERY_URL = settings.STAFF_OIDC_OP_DISCOVERY_URL = "http://127.0.0.1:9/none"
    assert SuomiFiBackend().authenticate(at_staff, nonce="n", code_verifier="v") is None
    assert StaffBackend().authenticate(at_partners, nonce="n", code_verifier="v") is None


# --- Passwords and break-glass --------------------------------------------------------------------------------


@pytest.fixture
def production(settings, staff_op) -> None:
    """DEBUG off, no public demo, staff sign-in configured: passwords are restricted."""
    settings.DEBUG = False
    settings.SUOMIFI_SANDBOX_PUBLIC_DEMO = False
    settings.STAFF_BREAK_GLASS_USERS = ["break-glass-1"]


def _password_user(username: str) -> User:
    user = User.objects.create_user(username=username, password="a-long-password-0123", is_staff=True)  # noqa: S106
    user.groups.add(Group.objects.get(name=AUDIT))
    return user


def test_password_sign_in__production__refused_for_an_ordinary_account_and_audited(client, production) -> None:
    _password_user("ordinary")

    response = client.post("/admin/login/", {"username": "ordinary", "password": "a-long-password-0123"})

    assert response.status_code == 200  # the login page again
    assert "_auth_user_id" not in client.session
    assert refusals() == [{"reason": "password_sign_in_disabled"}]


def test_password_sign_in__production__break_glass_account_signs_in_and_is_audited_as_such(client, production) -> None:
    user = _password_user("break-glass-1")

    response = client.post(
        "/admin/login/?break-glass=1", {"username": "break-glass-1", "password": "a-long-password-0123"}
    )

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
    [event] = AuditEvent.objects.filter(action=AuditEvent.Action.STAFF_BREAK_GLASS)
    assert (event.actor, event.details) == (user, {"method": "password"})


def test_password_sign_in__production__a_wrong_break_glass_password_is_audited(client, production) -> None:
    """Guessing at a break-glass account (one that skips the provider's MFA) leaves a trace: each wrong password is a
    refusal naming the account, not only the sign-in that finally succeeds."""
    user = _password_user("break-glass-1")

    response = client.post("/admin/login/?break-glass=1", {"username": "break-glass-1", "password": "a-guess-000000"})

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    [event] = AuditEvent.objects.filter(action=AuditEvent.Action.STAFF_LOGIN_REFUSED)
    assert (event.actor, event.details) == (user, {"reason": "password_wrong"})


def test_password_sign_in__production__a_refused_account_costs_a_hash_as_a_break_glass_one_does(
    client, production, monkeypatch
) -> None:
    """Refusing an ordinary account without hashing answered in milliseconds, a break-glass account's check in the
    hasher's time: the answer's time told which usernames are break-glass accounts. Each costs one hash now."""
    _password_user("ordinary")
    _password_user("break-glass-1")
    hashed: list[str] = []
    real = base_user.make_password
    monkeypatch.setattr(base_user, "make_password", lambda *a, **k: hashed.append("make") or real(*a, **k))
    checked = base_user.check_password
    monkeypatch.setattr(base_user, "check_password", lambda *a, **k: hashed.append("check") or checked(*a, **k))

    for username in ("ordinary", "nobody", "break-glass-1"):
        hashed.clear()
        client.post("/admin/login/?break-glass=1", {"username": username, "password": "a-guess-000000"})
        assert len(hashed) == 1, (username, hashed)


def test_password_sign_in__production__failures_limited_per_address_and_the_trail_bounded(
    client, production, settings
) -> None:
    """Password attempts were unlimited, and each refused one an audit event: a script could guess at break-glass
    passwords and fill the append-only trail. After STAFF_PASSWORD_RATE_LIMIT failures from one address the page
    answers 429 without trying the password (the right one included), and reaching the limit is recorded once."""
    settings.STAFF_PASSWORD_RATE_LIMIT = 3
    settings.STAFF_PASSWORD_RATE_WINDOW_SECONDS = 600
    _password_user("break-glass-1")
    guess = {"username": "break-glass-1", "password": "a-guess-000000"}

    answers = [client.post("/admin/login/?break-glass=1&next=/admin/", guess).status_code for _ in range(5)]
    right = client.post("/admin/login/?break-glass=1&next=/admin/", {**guess, "password": "a-long-password-0123"})

    assert answers == [200, 200, 200, 429, 429]
    assert right.status_code == 429
    page = right.content.decode()
    assert "Too many sign-in attempts" in page
    assert "Wait 10 minutes" in page
    assert "Signing in through Kela's identity provider still works." in page
    assert 'href="/admin/login/?break-glass=1&amp;next=/admin/"' in page  # back to the form it came from
    assert "no-store" in right["Cache-Control"]
    assert "_auth_user_id" not in client.session
    assert refusals() == [{"reason": "password_wrong"}] * 3 + [{"reason": "rate_limited"}]
    other = Client(REMOTE_ADDR="192.0.2.7")  # another address is not limited by this one's attempts
    assert other.post("/admin/login/?break-glass=1", {**guess, "password": "a-long-password-0123"}).status_code == 302


def test_password_sign_in__successful_sign_ins_count_nothing(client, settings) -> None:
    """Colleagues behind one address (or every client, passwords being the only way in without staff sign-in
    configured) are not locked out by each other's sign-ins: only failures count."""
    settings.STAFF_PASSWORD_RATE_LIMIT = 2
    _password_user("colleague")
    right = {"username": "colleague", "password": "a-long-password-0123"}

    for _ in range(4):
        assert client.post("/admin/login/", right).status_code == 302
        client.logout()

    assert [client.post("/admin/login/", {**right, "password": "wrong"}).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]


def test_rate_limits__cache_unreachable__fail_open(rf, settings) -> None:
    """With Redis down the limits count nothing and limit nobody (as kelabooking/settings.py promises), rather than
    failing the sign-in page or the registration request with a 500."""
    settings.CACHES = {  # Django's own signal handler makes the cache anew for the changed setting
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
    }
    request = rf.post("/admin/login/")

    assert not ratelimit.rate_limit_reached(request, scope="staff-password", limit=1)
    assert ratelimit.rate_limit_count(request, scope="staff-password", window_seconds=60) == 0
    assert not ratelimit.rate_limit_exceeded(request, scope="staff-password", limit=0, window_seconds=60)


def test_password_sign_in__public_demo__works_without_break_glass(client, settings, staff_op) -> None:
    settings.SUOMIFI_SANDBOX_PUBLIC_DEMO = True
    _password_user("demo")

    assert client.post("/admin/login/", {"username": "demo", "password": "a-long-password-0123"}).status_code == 302
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.STAFF_BREAK_GLASS).exists()


def test_login_page__production__no_password_form_but_the_kela_id_button(client, production) -> None:
    page = client.get("/admin/login/?next=/admin/partners/auditevent/").content.decode()

    assert 'href="/staff/login/?next=/admin/partners/auditevent/"' in page
    assert "Sign in with Kela ID" in page
    assert 'name="password"' not in page


def test_login_page__production_break_glass__password_form_shown(client, production) -> None:
    page = client.get("/admin/login/?break-glass=1").content.decode()

    assert 'name="password"' in page
    assert "Sign in with Kela ID" in page


def test_login_page__development__both_ways(client, settings, staff_op) -> None:
    settings.DEBUG = True

    page = client.get("/admin/login/").content.decode()

    assert 'name="password"' in page
    assert "Sign in with Kela ID" in page


def test_login_page__no_staff_provider__password_form_only(client, settings) -> None:
    settings.STAFF_OIDC_ENABLED = False

    page = client.get("/admin/login/").content.decode()

    assert 'name="password"' in page
    assert "Sign in with Kela ID" not in page


# --- Sessions and sign-out ------------------------------------------------------------------------------------


def _age_session(client: Client, *, started: float, last_seen: float) -> None:
    session = client.session
    session[STAFF_LOGIN_AT], session[STAFF_LAST_SEEN] = started, last_seen
    session.save()


@pytest.mark.parametrize(("started_ago", "idle", "reason"), [(120, 31 * 60, "idle"), (10 * 3600 + 1, 10, "absolute")])
def test_staff_session__timeout__signed_out_and_audited(
    client, staff_op, settings, started_ago: int, idle: int, reason: str
) -> None:
    sign_in(client, staff_op)
    now = time.time()
    _age_session(client, started=now - started_ago, last_seen=now - idle)

    response = client.get("/admin/partners/auditevent/")

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?session-expired=1"
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(action=AuditEvent.Action.SESSION_EXPIRED)
    assert event.details == {"reason": reason}
    assert event.actor == User.objects.get(staff_subject=STAFF_SUBJECT)
    assert "Your session ended" in client.get(response["Location"]).content.decode()


def test_staff_session__active__idle_timer_written_at_most_once_a_minute(client, staff_op) -> None:
    sign_in(client, staff_op)
    now = time.time()
    _age_session(client, started=now - 100, last_seen=now - 30)
    client.get("/admin/")
    assert client.session[STAFF_LAST_SEEN] == pytest.approx(now - 30)

    _age_session(client, started=now - 100, last_seen=now - 90)
    assert client.get("/admin/").status_code == 200
    assert client.session[STAFF_LAST_SEEN] == pytest.approx(time.time(), abs=5)


def test_staff_session__password_sign_in__gets_the_timeouts_too(client, settings) -> None:
    settings.STAFF_SESSION_IDLE_SECONDS = 60
    user = _password_user("demo")
    client.force_login(user)
    client.get("/admin/")
    assert STAFF_LOGIN_AT in client.session
    now = time.time()
    _age_session(client, started=now - 100, last_seen=now - 61)

    assert client.get("/admin/")["Location"] == "/admin/login/?session-expired=1"


def test_staff_sign_out__through_the_provider__ends_its_session_too(client, staff_op) -> None:
    sign_in(client, staff_op)
    id_token = client.session[ID_TOKEN_SESSION_KEY]

    response = client.post("/admin/logout/")

    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(f"{staff_op.issuer}/logout?")
    from tests.partners.provider import authorization_params

    assert authorization_params(response) == {
        "post_logout_redirect_uri": "http://testserver/staff/logged-out/",
        "client_id": staff_op.client_id,
        "id_token_hint": id_token,
    }
    assert "_auth_user_id" not in client.session
    actor = User.objects.get(staff_subject=STAFF_SUBJECT)
    assert AuditEvent.objects.get(action=AuditEvent.Action.STAFF_LOGOUT).actor == actor
    assert client.get("/staff/logged-out/").status_code == 200


def test_staff_sign_out__password_account__django_page_and_audited(client, settings) -> None:
    user = _password_user("demo")
    client.force_login(user)

    response = client.post("/admin/logout/")

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.get(action=AuditEvent.Action.STAFF_LOGOUT).actor == user


def test_staff_sign_out__get__not_allowed(client, staff_op) -> None:
    sign_in(client, staff_op)

    assert client.get("/admin/logout/").status_code == 405
    assert "_auth_user_id" in client.session


# --- Checks ---------------------------------------------------------------------------------------------------


def test_checks__group_map_names_no_staff_group__error(settings) -> None:
    settings.STAFF_OIDC_GROUP_MAP = {"kb-audit": "Audit reader"}

    ids = [message.id for message in checks.run_checks()]

    assert "partners.E101" in ids


def test_checks__production_without_staff_provider__warns_of_local_passwords(settings) -> None:
    settings.DEBUG = settings.SUOMIFI_SANDBOX_PUBLIC_DEMO = False
    settings.STAFF_OIDC_ENABLED = False

    assert "partners.W101" in [message.id for message in checks.run_checks()]


def test_checks__production_without_break_glass__warns(settings, staff_op) -> None:
    settings.DEBUG = settings.SUOMIFI_SANDBOX_PUBLIC_DEMO = False
    settings.STAFF_BREAK_GLASS_USERS = []

    ids = [message.id for message in checks.run_checks()]

    assert "partners.W102" in ids
    assert "partners.W101" not in ids
