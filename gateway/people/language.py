"""The console's language and clock: Chinese by default, English on request, times on
the court's wall clock (Beijing).

A person switches with ``?lang=en`` (or ``?lang=zh``) on any console page; the choice
is kept in a cookie of its own (not the signed session, so it survives logging out).
Messages are looked up in a small catalogue per language (gateway/people/messages.py);
a message missing in English falls back to Chinese, one missing everywhere shows its
key, so a gap is visible rather than blank.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Flask, Response, g, request

from gateway.people.messages import MESSAGES, vocabulary
from gateway.timeutil import as_utc, court_timezone

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
LANGUAGE_COOKIE = "gateway_console_lang"
_YEAR_SECONDS = 365 * 24 * 3600


def chosen_language() -> str:
    """This request's language: the query's ``lang``, else the cookie's, else Chinese."""
    wanted = request.args.get("lang")
    if wanted in LANGUAGES:
        return wanted
    kept = request.cookies.get(LANGUAGE_COOKIE)
    return kept if kept in LANGUAGES else DEFAULT_LANGUAGE


def translate(key: str, language: str | None = None, **values: Any) -> str:
    """The message ``key`` in ``language`` (this request's by default), with ``values`` filled in."""
    chosen = language or str(getattr(g, "console_language", DEFAULT_LANGUAGE))
    text = MESSAGES[chosen].get(key) or MESSAGES[DEFAULT_LANGUAGE].get(key) or key
    return text.format(**values) if values else text


def explain(code: str, detail: str) -> str:
    """A refusal as the console shows it: what the error code means in the page's language,
    then the service's own words, which are English (they name fields and rules exactly as the
    API does, so an officer can quote them to support). English pages show the detail alone."""
    language = getattr(g, "console_language", DEFAULT_LANGUAGE)
    meaning = MESSAGES[language].get(f"error.code.{code}")
    if language == "en" or meaning is None:
        return detail
    return meaning + translate("error.detail", detail=detail)


def describe_anomaly(anomaly: dict[str, Any]) -> tuple[str, str]:
    """(rule, finding) of an anomaly in the page's language: Chinese pages word the finding
    from its facts; English pages, or a rule the catalogue lacks, keep the detector's words."""
    language = getattr(g, "console_language", DEFAULT_LANGUAGE)
    rule, message = anomaly["rule"], anomaly["message"]
    wording = MESSAGES[language].get(f"anomaly.{rule}")
    if language == "en" or wording is None:
        return rule, message
    try:
        return MESSAGES[language].get(f"rule.{rule}", rule), wording.format(**anomaly.get("facts") or {})
    except (KeyError, IndexError):
        return rule, message  # facts and wording out of step: the detector's words, never a broken line


def court_time(moment: datetime | str | None) -> str:
    """A moment as the court reads it: Beijing wall-clock time, to the minute."""
    if moment is None or moment == "":
        return "—"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return as_utc(moment).astimezone(court_timezone()).strftime("%Y-%m-%d %H:%M")


def court_time_seconds(moment: datetime | str | None) -> str:
    """A moment on the court's wall clock to the second (audit events a second apart differ)."""
    if moment is None or moment == "":
        return "—"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return as_utc(moment).astimezone(court_timezone()).strftime("%Y-%m-%d %H:%M:%S")


def money(value: Decimal | str | int | None) -> str:
    """Yuan with thousands separators and two decimals (¥ is left to the label)."""
    if value is None or value == "":
        return "—"
    return f"{Decimal(str(value)):,.2f}"


def day(value: date | str | None) -> str:
    if value is None or value == "":
        return "—"
    return value.isoformat() if isinstance(value, date) else str(value)


def _remember_choice(response: Response) -> Response:
    wanted = request.args.get("lang")
    if request.path.startswith("/console") and wanted in LANGUAGES and request.cookies.get(LANGUAGE_COOKIE) != wanted:
        response.set_cookie(LANGUAGE_COOKIE, wanted, max_age=_YEAR_SECONDS, path="/console", httponly=True,
                            samesite="Lax", secure=request.is_secure)
    return response


def init_app(app: Flask) -> None:
    @app.before_request
    def _pick_language() -> None:
        if request.path.startswith("/console"):
            g.console_language = chosen_language()

    app.after_request(_remember_choice)

    @app.context_processor
    def _console_helpers() -> dict[str, Any]:
        language = getattr(g, "console_language", DEFAULT_LANGUAGE)
        return {"t": translate, "lang": language, "other_lang": "en" if language == "zh" else "zh",
                "v": lambda kind, code: vocabulary(kind, code, language), "describe_anomaly": describe_anomaly}

    app.add_template_filter(court_time, "court_time")
    app.add_template_filter(court_time_seconds, "court_time_seconds")
    app.add_template_filter(money, "money")
    app.add_template_filter(day, "day")
