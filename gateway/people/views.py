"""The console's login pages: OpenID Connect against the court's identity provider
(gateway/people/oidc.py), and, while ``[console] token_login`` allows it, the
older fallback of pasting an auditor's bearer JWT. Every attempt that gets an
answer is an audit event (``console.login``, ``ok`` or ``refused`` with the rule).

The pending login (state, nonce, PKCE verifier) waits in its own signed cookie,
HttpOnly, scoped to ``/console/login`` and SameSite=Lax, for ten minutes: the
provider sends the browser back with a top-level navigation from its own site,
which a SameSite=Strict cookie would not survive. For the same reason the
callback answers with a page that moves on by itself instead of a redirect: the
Strict session cookie it sets is sent on the next, same-site, navigation.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
from flask import Blueprint, Flask, current_app, redirect, render_template, request, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from gateway.auditing.log import flush_refusal_summaries, get_audit
from gateway.auth.tokens import Principal
from gateway.db import get_db
from gateway.errors import GatewayError, LoginRefused
from gateway.people import demo_provider, language
from gateway.people.csrf import csrf_passes, csrf_token
from gateway.people.claims import ClaimRules, person_from_claims
from gateway.people.oidc import OidcClient, PendingLogin
from gateway.people.services import login_details, sign_in, sign_out, signed_in_person
from gateway.settings import read_secret
from gateway.timeutil import utc_now

bp = Blueprint("people", __name__, url_prefix="/console")
PENDING_COOKIE = "gateway_console_login"
PENDING_SECONDS = 600
# Where each role lands after logging in; a role without pages of its own sees who it is.
START_PAGES = {"auditor": "console.events", "court_officer": "casework.cases", "approver": "casework.approvals"}


def _oidc() -> OidcClient | None:
    return current_app.extensions.get("oidc")


def _settings():
    return current_app.config["SETTINGS"].console


def _pending_signer() -> URLSafeTimedSerializer:
    secret_key = current_app.secret_key
    if not secret_key:  # create_app sets it whenever the console is on
        raise RuntimeError("the console's login needs the app's secret_key")
    return URLSafeTimedSerializer(secret_key, salt="gateway console oidc login v1")


def _audit_login(outcome: str, method: str, actor: Principal | None = None, **details: Any) -> None:
    if outcome == "refused" and actor is None and "claimed_sub" not in details:
        # Nobody verified is named: a forged callback costs an attacker nothing, so these are
        # aggregated per source like the API's 401s (gateway/auditing/refusals.py).
        refusals = current_app.extensions["unauthenticated_refusals"]
        flush_refusal_summaries(get_db(), get_audit(), refusals)
        if not refusals.admit(request.remote_addr or "unknown", request.path, utc_now()):
            return
    with get_db().transaction() as db_session:
        get_audit().record(db_session, action="console.login", outcome=outcome, actor=actor,
                           details={"method": method, "source": request.remote_addr, **details})


def _login_page(error: str | None = None, status: int = 200) -> Any:
    return render_template("console/login.html", error=error, oidc=_oidc() is not None,
                           token_login=_settings().token_login, demo=_settings().demo_provider), status


def audit_console_refusal(status: int, code: str, message: str, *, case_number: str | None = None,
                          subject_id_number: str | None = None, request_id: str | None = None) -> None:
    """A console page or form refused to a signed-in person, audited like the API's refusals
    (``console.<method>``, ``refused``). Nobody signed in: nothing (the login page says why)."""
    person = signed_in_person()
    if person is None:
        return
    with get_db().transaction() as db_session:
        get_audit().record(db_session, action=f"console.{request.method.lower()}", outcome="refused", actor=person,
                           case_number=case_number, subject_id_number=subject_id_number, request_id=request_id,
                           details={"path": request.path, "status": status, "code": code, "message": message[:500]})


def refuse_without_csrf_token() -> Any:
    """Before every console POST of a blueprint that calls it: a form without this
    session's token is refused (400) before the view runs."""
    if request.method == "POST" and not csrf_passes():
        audit_console_refusal(400, "csrf", "the form did not carry this session's CSRF token")
        return render_template("console/refused.html", user=signed_in_person(),
                               message=language.translate("error.csrf")), 400
    return None


bp.before_request(refuse_without_csrf_token)


@bp.get("/login")
def login() -> Any:
    return _login_page()


@bp.post("/login")
def token_login() -> Any:
    """The fallback: an auditor's bearer JWT, verified like any API token."""
    if not _settings().token_login:
        return _login_page("logging in with a pasted token is turned off here ([console] token_login)", 403)
    token = (request.form.get("token") or "").strip()
    try:
        principal = current_app.extensions["tokens"].verify(token)
    except GatewayError as exc:
        _audit_login("refused", "token", message=exc.message[:200])
        return _login_page(language.explain(exc.code, exc.message), 401)
    if principal.role != "auditor":
        message = f"role {principal.role} may not use the audit console (needs auditor)"
        _audit_login("refused", "token", message=message, claimed_sub=principal.sub[:200])
        return _login_page(message, 403)
    # The token has just been verified: read its expiry without checking it again.
    expires_at = jwt.decode(token, options={"verify_signature": False}).get("exp", 0)
    sign_in(principal, expires_at=expires_at, method="token")
    _audit_login("ok", "token", actor=principal)
    return redirect(url_for(START_PAGES.get(principal.role, "people.home")))


@bp.get("/login/start")
def start() -> Any:
    client = _oidc()
    if client is None:
        return _login_page("no identity provider is set up here ([console] oidc_issuer)", 404)
    redirect_uri = _settings().oidc_redirect_uri or url_for("people.callback", _external=True)
    try:
        url, pending = client.begin(redirect_uri)
    except LoginRefused as exc:
        return _login_page(exc.message, 502)
    response = redirect(url, code=302)
    response.set_cookie(PENDING_COOKIE, _pending_signer().dumps(pending.to_dict()), max_age=PENDING_SECONDS,
                        path=url_for("people.login"), httponly=True, samesite="Lax", secure=request.is_secure)
    return response


@bp.get("/login/callback")
def callback() -> Any:
    client = _oidc()
    if client is None:
        return _login_page("no identity provider is set up here ([console] oidc_issuer)", 404)
    claimed: dict[str, Any] = {}
    try:
        pending = _pending_login()
        claims = client.finish(pending, request.args.to_dict())
        claimed = {"claimed_sub": str(claims.get("sub", ""))[:200]}  # verified: the provider said it
        person = person_from_claims(claims, ClaimRules.from_settings(_settings()))
    except LoginRefused as exc:
        _audit_login("refused", "oidc", issuer=client.issuer, rule=exc.rule, message=exc.message[:200], **claimed)
        response = current_app.make_response(_login_page(language.explain(exc.code, exc.message), 403))
    else:
        sign_in(person, expires_at=time.time() + 60 * _settings().session_minutes, method="oidc")
        _audit_login("ok", "oidc", actor=person, issuer=client.issuer)
        target = url_for(START_PAGES.get(person.role, "people.home"))
        response = current_app.make_response(render_template("console/logged_in.html", target=target, user=person))
    response.delete_cookie(PENDING_COOKIE, path=url_for("people.login"))
    return response


def _pending_login() -> PendingLogin:
    kept = request.cookies.get(PENDING_COOKIE)
    if not kept:
        raise LoginRefused("state_missing", "no login is in progress in this browser (or it took longer than "
                                            f"{PENDING_SECONDS // 60} minutes): start again")
    try:
        return PendingLogin.from_dict(_pending_signer().loads(kept, max_age=PENDING_SECONDS))
    except SignatureExpired:
        raise LoginRefused("state_missing", f"the login took longer than {PENDING_SECONDS // 60} minutes: "
                                            "start again") from None
    except BadSignature:
        raise LoginRefused("state_missing", "this browser's login cookie is not one this gateway made: "
                                            "start again") from None


@bp.post("/logout")
def logout() -> Any:
    sign_out()
    return redirect(url_for("people.login"))


@bp.get("/me")
def home() -> Any:
    person = signed_in_person()
    if person is None:
        return redirect(url_for("people.login"))
    return render_template("console/home.html", user=person, login=login_details(), error=None)


def init_app(app: Flask) -> None:
    """Register the login pages; the OIDC client if an issuer is set; the demo provider if asked for."""
    console = app.config["SETTINGS"].console
    language.init_app(app)
    app.add_template_global(csrf_token, "csrf_token")
    if console.oidc_issuer:
        secret = read_secret(console.oidc_client_secret_env) if console.oidc_client_secret_env else None
        app.extensions["oidc"] = OidcClient(console, secret)
    if console.demo_provider:
        demo_provider.init_app(app)
    app.register_blueprint(bp)
