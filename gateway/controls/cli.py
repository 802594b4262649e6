"""``gateway controls ...``: the follow-up list for an officer's terminal."""

from __future__ import annotations

import sys
from typing import Any

import click


@click.group()
def controls() -> None:
    """Controls: follow-up lists."""


@controls.command("due")
@click.option("--days", type=click.IntRange(min=0, max=3650), default=None,
              help="Warning days ahead of a lapse (default: settings controls.warning_days).")
@click.option("--court", default=None, help="Only this court's cases (default: every court).")
@click.option("--case", "case_number", default=None, help="Only this case number.")
def due(days: int | None, court: str | None, case_number: str | None) -> None:
    """Controls about to lapse, cash found but not controlled, freezes partly covered,
    deducts not confirmed: a table on a terminal, one tab-separated line per item otherwise."""
    from sqlalchemy import select

    from gateway.cases.models import Case
    from gateway.controls.rules import ControlRules
    from gateway.controls.services import due_list
    from gateway.db import Database
    from gateway.errors import ConfigError
    from gateway.settings import load_settings
    from gateway.timeutil import utc_now

    # The settings read here, not through gateway.cli: the top-level command group
    # imports this one, and a command reaching back into it made an import loop.
    try:
        settings = load_settings()
        rules = ControlRules.from_settings(settings.controls)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    database = Database(settings.database_url)
    try:
        with database.reading() as session:
            case_id = None
            if case_number:
                case_id = session.scalar(select(Case.id).where(Case.case_number == case_number))
                if case_id is None:
                    raise click.ClickException(f"no case {case_number}")
            body = due_list(session, rules, utc_now(), court_code=court, case_id=case_id, days=days)
    finally:
        database.dispose()
    _print(body["items"], body["as_of"])


def _print(items: list[dict[str, Any]], as_of: str) -> None:
    columns = ("kind", "due", "case_number", "agency", "identifier", "detail")
    if not sys.stdout.isatty():
        for item in items:
            click.echo("\t".join(str(item[c] or "") for c in columns))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Controls to follow up as of {as_of} ({len(items)})")
    for column in columns:
        table.add_column(column.replace("_", " "))
    for item in items:
        table.add_row(*(str(item[c] or "") for c in columns))
    Console().print(table)
