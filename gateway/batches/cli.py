"""`gateway batch submit FILE`: a batch to a running gateway over its API, followed
with a progress bar until every line is answered, then the merged report saved."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import click
import requests
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@click.group()
def batch() -> None:
    """Batch submission (集中查控)."""


def _check(reply: requests.Response) -> dict:
    if reply.status_code >= 400:
        try:
            error = reply.json()["error"]
            fields = "; ".join(f"{k}: {', '.join(v)}" for k, v in list(error.get("fields", {}).items())[:20])
            raise click.ClickException(f"{reply.status_code} {error['message']}" + (f" ({fields})" if fields else ""))
        except (ValueError, KeyError):
            raise click.ClickException(f"{reply.status_code} {reply.text[:300]}") from None
    return reply.json()


@batch.command("submit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--gateway", "gateway_url", default="http://127.0.0.1:8080", show_default=True,
              help="The gateway's base URL.")
@click.option("--token", envvar="GATEWAY_TOKEN", required=True, help="A court officer's bearer token (or GATEWAY_TOKEN).")
@click.option("--key", default=None, help="Idempotency-Key (default: a new one; reuse it to resubmit safely).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save the merged report (CSV) here when every line is done.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to follow the batch before giving up.")
def batch_submit(file: Path, gateway_url: str, token: str, key: str | None, report_path: Path | None,
                 timeout: float) -> None:
    """Submit FILE (.csv: case_number,kind,name,id_number[,categories]; .json: {"lines": [...]})."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    content_type = "text/csv" if file.suffix.lower() == ".csv" else "application/json"
    key = key or f"batch-{uuid.uuid4()}"
    base = gateway_url.rstrip("/")
    try:
        submitted = _check(http.post(f"{base}/api/v1/batches", data=file.read_bytes(), timeout=60,
                                     headers={"Content-Type": content_type, "Idempotency-Key": key}))
        click.echo(f"batch {submitted['id']}: {submitted['progress']['lines']} lines accepted whole (key {key})")
        state = _follow(http, base, submitted, timeout)
    except requests.RequestException as exc:
        raise click.ClickException(f"cannot reach the gateway at {base}: {exc}") from None
    progress = state["progress"]
    click.echo(f"{progress['answered']} of {progress['lines']} answered, {progress['failed']} failed")
    if report_path is not None:
        reply = http.get(f"{base}/api/v1/batches/{state['id']}/report", timeout=300)
        if reply.status_code >= 400:
            _check(reply)
        report_path.write_bytes(reply.content)
        click.echo(f"merged report: {report_path}")


def _follow(http: requests.Session, base: str, state: dict, timeout: float) -> dict:
    give_up = time.monotonic() + timeout
    total = state["progress"]["lines"]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        accepted = bar.add_task("inquiries made", total=total)
        finished = bar.add_task("answered or failed", total=total)
        while True:
            state = _check(http.get(f"{base}/api/v1/batches/{state['id']}", timeout=30))
            p = state["progress"]
            bar.update(accepted, completed=p["accepted"] + p["refused"])
            bar.update(finished, completed=p["answered"] + p["failed"])
            if state["state"] == "finished":
                return state
            if time.monotonic() > give_up:
                raise click.ClickException(f"batch {state['id']} not finished after {timeout:.0f} s "
                                           f"({p['answered']} of {total} answered); follow it with GET /api/v1/batches/{state['id']}")
            time.sleep(0.5)
