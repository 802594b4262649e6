"""The console's OpenID Connect login, over real HTTP against the built-in demo
identity provider (the gateway serving both, on a loopback port): the whole
authorization code flow with PKCE as a browser would follow it, each person's
landing page and session, the refusals (tampered ID token, wrong nonce, wrong or
missing state, an unknown role, a login declined at the provider), the demo
provider's own checks, and the audit events. On both databases."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt as pyjwt
import lxml.html
import pytest
import requests
from authlib.jose import JsonWebKey, JsonWebToken

from conftest import audit_rows, make_app
from gateway.errors import LoginRefused
from sandboxes.server import DeferredApp, SandboxServer

CALLBACK = "/console/login/callback"


class TokenEndpointTap:
    """WSGI middleware over the gateway: keeps each token endpoint answer, and may
    rewrite the ID token in it on its way to the relying party."""

    def __init__(self, app: Callable[..., Any], rewrite: Callable[[str], str] | None = None):
        self.app, self.rewrite, self.answers = app, rewrite, []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ["PATH_INFO"] != "/console/demo-idp/token":
            return self.app(environ, start_response)
        kept: dict[str, Any] = {}

        def keep(status: str, headers: list, exc_info: Any = None) -> None:
            kept["status"], kept["headers"] = status, headers

        body = b"".join(self.app(environ, keep))
        answer = json.loads(body)
        if self.rewrite and "id_token" in answer:
            answer["id_token"] = self.rewrite(answer["id_token"])
            body = json.dumps(answer).encode()
        self.answers.append(answer)
        headers = [(k, v) for k, v in kept["headers"] if k.lower() != "content-length"]
        start_response(kept["status"], headers + [("Content-Length", str(len(body)))])
        return [body]


class Gateway:
    def __init__(self, url: str, app: Any, tap: TokenEndpointTap):
        self.url, self.app, self.tap = url, app, tap
        self.issuer = url + "/console/demo-idp"

    def browser(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.cookies.set("gateway_console_lang", "en", path="/console")  # the assertions read English
        return session


@pytest.fixture
def start_gateway(overrides: dict[str, Any]) -> Iterator[Callable[..., Gateway]]:
    started: list[tuple[SandboxServer, Any]] = []

    def start(rewrite: Callable[[str], str] | None = None, **console: Any) -> Gateway:
        slot = DeferredApp()
        server = SandboxServer(slot).start()
        settings = {"oidc_issuer": server.url + "/console/demo-idp", "demo_provider": True, **console}
        app = make_app({**overrides, "console": settings}, {})
        tap = TokenEndpointTap(app, rewrite)
        slot.app = tap
        started.append((server, app))
        return Gateway(server.url, app, tap)

    yield start
    for server, app in started:
        server.stop()
        app.extensions["db"].dispose()


@pytest.fixture
def gateway(start_gateway) -> Gateway:
    return start_gateway()


def provider_form(browser: requests.Session, gateway: Gateway) -> tuple[str, dict[str, str]]:
    """Start a login at the console; return the demo provider's authorize URL and its form's fields."""
    page = browser.get(gateway.url + "/console/login", timeout=10)
    assert page.status_code == 200 and 'id="oidc-login"' in page.text
    started = browser.get(gateway.url + "/console/login/start", allow_redirects=False, timeout=10)
    assert started.status_code == 302
    authorize = started.headers["Location"]
    assert authorize.startswith(gateway.issuer + "/authorize?")
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["nonce"][0] and query["state"][0] and query["redirect_uri"] == [gateway.url + CALLBACK]
    form_page = browser.get(authorize, timeout=10)
    assert form_page.status_code == 200 and "DEMO identity provider" in form_page.text
    document = lxml.html.fromstring(form_page.text)
    fields = {i.get("name"): i.get("value") for i in document.xpath("//form//input[@type='hidden']")}
    return authorize, fields


def log_in(browser: requests.Session, gateway: Gateway, person: str, *, change: dict[str, str] | None = None,
           change_callback: dict[str, str] | None = None, decision: str | None = None) -> requests.Response:
    """The whole flow as a browser follows it; ``change`` alters what the provider is sent,
    ``change_callback`` what comes back to the console. Returns the callback's answer."""
    authorize, fields = provider_form(browser, gateway)
    fields.update(change or {})
    choice = {"decision": decision} if decision else {"person": person}
    picked = browser.post(authorize.split("?")[0], data={**fields, **choice}, allow_redirects=False, timeout=10)
    assert picked.status_code == 302, picked.text
    back = picked.headers["Location"]
    assert back.startswith(gateway.url + CALLBACK + "?")
    if change_callback:
        query = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
        back = gateway.url + CALLBACK + "?" + urlencode({**query, **change_callback})
    return browser.get(back, allow_redirects=False, timeout=15)


def session_of(gateway: Gateway, browser: requests.Session) -> dict[str, Any]:
    cookie = browser.cookies.get("gateway_console", path="/console")
    return gateway.app.session_interface.get_signing_serializer(gateway.app).loads(cookie) if cookie else {}


def logins(gateway: Gateway) -> list[Any]:
    return [e for e in audit_rows(gateway.app) if e.action == "console.login"]


@pytest.mark.parametrize(("person", "role", "court", "landing"), [
    ("officer.wang", "court_officer", "330102", "/console/cases"),
    ("judge.zhao", "approver", "330102", "/console/approvals"),
    ("auditor.sun", "auditor", None, "/console/"),
])
def test_each_demo_person_logs_in_with_the_code_flow(gateway, person, role, court, landing) -> None:
    browser = gateway.browser()
    done = log_in(browser, gateway, person)
    assert done.status_code == 200
    assert f'url={landing}"' in done.text and f"Logged in as {person} ({role})" in done.text
    assert browser.cookies.get("gateway_console_login") is None  # the pending login is spent
    kept = session_of(gateway, browser)
    assert set(kept) == {"person", "csrf"}  # the claims and the forms' CSRF token (gateway/people/csrf.py)
    assert {k: kept["person"][k] for k in ("sub", "role", "court", "method")} == {
        "sub": person, "role": role, "court": court, "method": "oidc"}
    assert 8 * 3600 - 60 < kept["person"]["exp"] - time.time() <= 8 * 3600  # session_minutes, not the token's 5

    page = browser.get(gateway.url + landing, timeout=10)
    assert page.status_code == 200 and person in page.text
    audit_pages = browser.get(gateway.url + "/console/anomalies", allow_redirects=False, timeout=10)
    if role == "auditor":
        assert audit_pages.status_code == 200 and "<table class=\"events\"" in page.text
    else:
        assert audit_pages.status_code == 403
        assert f"role {role} may not open the audit pages (needs auditor)" in audit_pages.text
        assert f"court {court}" in page.text

    [event] = logins(gateway)
    assert (event.outcome, event.actor_sub, event.actor_role, event.actor_court) == ("ok", person, role, court)
    assert event.details["method"] == "oidc" and event.details["issuer"] == gateway.issuer

    assert browser.post(gateway.url + "/console/logout", timeout=10, allow_redirects=False).status_code == 400
    assert browser.get(gateway.url + landing, allow_redirects=False, timeout=10).status_code == 200  # no token: kept
    browser.post(gateway.url + "/console/logout", data={"csrf_token": kept["csrf"]}, timeout=10)
    assert browser.get(gateway.url + landing, allow_redirects=False, timeout=10).status_code == 302


def test_a_person_the_mapping_does_not_know_is_refused_naming_the_rule(gateway) -> None:
    browser = gateway.browser()
    refused = log_in(browser, gateway, "clerk.qian")
    assert refused.status_code == 403
    assert "names no console role" in refused.text and "console.role_values" in refused.text
    assert "person" not in session_of(gateway, browser)
    [event] = logins(gateway)
    assert (event.outcome, event.actor_sub) == ("refused", None)
    assert event.details["rule"] == "role_unknown" and event.details["claimed_sub"] == "clerk.qian"


def _flip_role(id_token: str) -> str:
    """The same signature over a payload that now says auditor (what an attacker in the middle would try)."""
    header, payload, signature = id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "auditor"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return ".".join((header, forged, signature))


def test_a_tampered_id_token_is_refused(start_gateway) -> None:
    gateway = start_gateway(rewrite=_flip_role)
    browser = gateway.browser()
    refused = log_in(browser, gateway, "officer.wang")
    assert refused.status_code == 403 and "signature does not verify" in refused.text
    assert gateway.tap.answers and "person" not in session_of(gateway, browser)
    [event] = logins(gateway)
    assert (event.outcome, event.details["rule"]) == ("refused", "signature_invalid")
    assert "claimed_sub" not in event.details  # nothing an unverified token says is recorded


def test_an_id_token_for_another_nonce_is_refused(gateway) -> None:
    browser = gateway.browser()
    refused = log_in(browser, gateway, "auditor.sun", change={"nonce": "a-nonce-of-another-login"})
    assert refused.status_code == 403 and "nonce claim is not accepted" in refused.text
    assert "person" not in session_of(gateway, browser)
    assert [(e.outcome, e.details["rule"]) for e in logins(gateway)] == [("refused", "nonce_mismatch")]


def test_a_callback_with_another_state_is_refused(gateway) -> None:
    browser = gateway.browser()
    refused = log_in(browser, gateway, "auditor.sun", change_callback={"state": "forged"})
    assert refused.status_code == 403 and "state does not match" in refused.text
    assert "person" not in session_of(gateway, browser)
    assert [e.details["rule"] for e in logins(gateway)] == ["state_mismatch"]


def test_a_callback_in_a_browser_that_started_no_login_is_refused(gateway) -> None:
    """A login CSRF: someone else's code pushed into this browser, which has no pending login."""
    code_url = gateway.url + CALLBACK + "?" + urlencode({"code": "x", "state": "y"})
    refused = gateway.browser().get(code_url, timeout=10)
    assert refused.status_code == 403 and "no login is in progress in this browser" in refused.text
    assert [e.details["rule"] for e in logins(gateway)] == ["state_missing"]


def test_forged_callbacks_are_audited_once_per_source_and_window_then_counted(gateway) -> None:
    from gateway.auditing.log import flush_refusal_summaries
    from gateway.timeutil import utc_now

    for n in range(5):
        forged = gateway.browser().get(gateway.url + CALLBACK + f"?code=c{n}&state=s{n}", timeout=10)
        assert forged.status_code == 403
    assert [e.details["rule"] for e in logins(gateway)] == ["state_missing"]
    app = gateway.app
    later = utc_now() + timedelta(seconds=2 * app.config["SETTINGS"].audit.unauthenticated_audit_window_seconds)
    assert flush_refusal_summaries(app.extensions["db"], app.extensions["audit"],
                                   app.extensions["unauthenticated_refusals"], now=later) == 1
    [summary] = [e for e in audit_rows(app) if e.action == "api.unauthenticated"]
    assert summary.details["count"] == 4 and summary.details["last_path"] == CALLBACK
    # A person the provider vouched for is never aggregated: the clerk's refusal names him.
    assert log_in(gateway.browser(), gateway, "clerk.qian").status_code == 403
    assert [e.details.get("claimed_sub") for e in logins(gateway)] == [None, "clerk.qian"]


def test_a_login_declined_at_the_provider_is_refused(gateway) -> None:
    refused = log_in(gateway.browser(), gateway, "", decision="deny")
    assert refused.status_code == 403 and "access_denied" in refused.text
    assert [e.details["rule"] for e in logins(gateway)] == ["provider_refused"]


def test_claim_names_and_role_values_come_from_the_settings(start_gateway) -> None:
    gateway = start_gateway(role_claim="gateway_role", court_claim="court_code",
                            role_values={"enforcement-officer": "court_officer"})
    browser = gateway.browser()
    assert log_in(browser, gateway, "officer.wang").status_code == 200
    claims = pyjwt.decode(gateway.tap.answers[0]["id_token"], options={"verify_signature": False})
    assert claims["gateway_role"] == "enforcement-officer" and claims["court_code"] == "330102"
    assert "role" not in claims and "court" not in claims
    assert session_of(gateway, browser)["person"]["role"] == "court_officer"


def test_a_confidential_client_authenticates_at_the_token_endpoint(start_gateway, monkeypatch) -> None:
    monkeypatch.setenv("TEST_CONSOLE_CLIENT_SECRET", "s3cret-of-the-console")
    gateway = start_gateway(oidc_client_secret_env="TEST_CONSOLE_CLIENT_SECRET")
    assert log_in(gateway.browser(), gateway, "judge.zhao").status_code == 200
    without = requests.post(gateway.issuer + "/token", timeout=10, data={
        "grant_type": "authorization_code", "code": "x", "client_id": "enforcement-gateway-console"})
    assert without.status_code == 401 and without.json()["error"] == "invalid_client"


def _code_for(browser: requests.Session, gateway: Gateway) -> tuple[str, dict]:
    authorize, fields = provider_form(browser, gateway)
    picked = browser.post(authorize.split("?")[0], data={**fields, "person": "officer.wang"},
                          allow_redirects=False, timeout=10)
    query = parse_qs(urlsplit(picked.headers["Location"]).query)
    return query["code"][0], fields


def test_the_demo_provider_holds_codes_to_pkce_their_client_and_one_use(gateway) -> None:
    code, fields = _code_for(gateway.browser(), gateway)
    token_url = gateway.issuer + "/token"
    base = {"grant_type": "authorization_code", "code": code, "client_id": fields["client_id"],
            "redirect_uri": fields["redirect_uri"]}
    wrong = requests.post(token_url, data={**base, "code_verifier": "not-the-verifier-" + "x" * 40}, timeout=10)
    assert wrong.status_code == 400 and "PKCE" in wrong.json()["error_description"]
    elsewhere = requests.post(token_url, data={**base, "redirect_uri": gateway.url + "/elsewhere"}, timeout=10)
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_grant"
    assert elsewhere.headers["Cache-Control"] == "no-store"

    discovery = requests.get(gateway.issuer + "/.well-known/openid-configuration", timeout=10).json()
    assert discovery["issuer"] == gateway.issuer and discovery["code_challenge_methods_supported"] == ["S256"]
    [key] = requests.get(discovery["jwks_uri"], timeout=10).json()["keys"]
    assert key["kid"].startswith("demo-") and key["alg"] == "RS256" and "d" not in key


def test_the_demo_provider_redirects_nowhere_it_does_not_know(gateway) -> None:
    authorize = gateway.issuer + "/authorize"
    good = {"response_type": "code", "client_id": "enforcement-gateway-console", "scope": "openid",
            "redirect_uri": gateway.url + CALLBACK, "state": "s", "nonce": "n", "code_challenge": "c" * 43,
            "code_challenge_method": "S256"}
    evil = requests.get(authorize, params={**good, "redirect_uri": "https://evil.example/cb"},
                        allow_redirects=False, timeout=10)
    assert evil.status_code == 400 and "is not registered" in evil.text
    stranger = requests.get(authorize, params={**good, "client_id": "someone"}, allow_redirects=False, timeout=10)
    assert stranger.status_code == 400 and "unknown client_id" in stranger.text
    no_pkce = requests.get(authorize, params={k: v for k, v in good.items() if not k.startswith("code_")},
                           allow_redirects=False, timeout=10)
    assert no_pkce.status_code == 302
    assert parse_qs(urlsplit(no_pkce.headers["Location"]).query) == {
        "error": ["invalid_request"], "error_description": ["PKCE is required: code_challenge with method S256"],
        "state": ["s"]}


def _demo_key(gateway: Gateway):
    settings = gateway.app.config["SETTINGS"]
    return JsonWebKey.import_key((settings.keys_dir / "demo-idp-rs256.pem").read_bytes(), {"kty": "RSA"})


@pytest.mark.parametrize(("change", "rule"), [
    ({"aud": "another-client"}, "audience_mismatch"),
    ({"iss": "https://idp.example"}, "issuer_mismatch"),
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"nonce": "other"}, "nonce_mismatch"),
])
def test_the_relying_party_checks_every_claim_of_a_signed_id_token(gateway, change, rule) -> None:
    key = _demo_key(gateway)
    now = int(time.time())
    claims = {"iss": gateway.issuer, "aud": "enforcement-gateway-console", "sub": "officer.wang", "iat": now,
              "exp": now + 300, "nonce": "n", "role": "court_officer", "court": "330102", **change}
    token = JsonWebToken(["RS256"]).encode({"alg": "RS256", "kid": "demo-" + key.thumbprint()}, claims, key).decode()
    with gateway.app.app_context(), pytest.raises(LoginRefused) as info:
        gateway.app.extensions["oidc"].verify_id_token(token, nonce="n")
    assert info.value.rule == rule


def test_the_relying_party_refuses_symmetric_and_unknown_keys(gateway) -> None:
    client = gateway.app.extensions["oidc"]
    now = int(time.time())
    claims = {"iss": gateway.issuer, "aud": "enforcement-gateway-console", "sub": "x", "iat": now,
              "exp": now + 300, "nonce": "n"}
    # HS256 keyed with the public key's modulus: the classic confusion attack.
    modulus = requests.get(gateway.issuer + "/jwks", timeout=10).json()["keys"][0]["n"]
    forged = pyjwt.encode(claims, modulus, algorithm="HS256", headers={"kid": "demo-x"})
    with pytest.raises(LoginRefused) as info:
        client.verify_id_token(forged, nonce="n")
    assert info.value.rule == "algorithm_refused"
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    unknown = pyjwt.encode(claims, stranger, algorithm="RS256", headers={"kid": "someone-elses"})
    with pytest.raises(LoginRefused) as info:
        client.verify_id_token(unknown, nonce="n")
    assert info.value.rule == "key_unknown"


def test_bearer_tokens_still_open_the_api_with_the_demo_provider_on(gateway, settings) -> None:
    from gateway.auth.tokens import issue_token

    token = issue_token(settings, role="auditor", sub="auditor.sun")
    reply = requests.get(gateway.url + "/api/v1/audit/events", headers={"Authorization": f"Bearer {token}"},
                         timeout=10)
    assert reply.status_code == 200
    assert requests.get(gateway.url + "/api/v1/audit/events", timeout=10).status_code == 401
