"""The `gateway` command as a newcomer runs it."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jwt
import lxml.html
import pytest
import requests
from click.testing import CliRunner

from gateway.cli import main

GATEWAY = str(Path(sys.executable).parent / "gateway")


def _env(tmp_path, **extra):
    config = tmp_path / "settings.toml"
    config.write_text(f'[gateway]\ninstance_dir = "{tmp_path / "instance"}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return {**env, "GATEWAY_CONFIG": str(config), **extra}


def test_demo_runs_the_whole_path_and_exits_0(database_url, tmp_path):
    """`gateway demo` on SQLite and on PostgreSQL (GATEWAY_DATABASE_URL)."""
    result = subprocess.run([GATEWAY, "demo"], env=_env(tmp_path, GATEWAY_DATABASE_URL=database_url),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "one-click inquiry accepted (HTTP 202)" in out
    assert "same reply: True" in out and "HTTP 403 purpose_denied" in out
    assert "completed" in out and "asset report" in out and "household register" in out
    # All five agency kinds answered, over all three protocols.
    assert "answered by 5 agency kinds over rest, sftp, soap" in out
    for kind in ("bank", "tax", "public_security", "real_estate", "market_regulation"):
        assert kind in out
    # The freeze: refused to its proposer, approved by a judge, in force on the report.
    assert "HTTP 403 self_approval" in out and "judge.zhao approves it: HTTP 200" in out
    assert "freeze controlled" in out and "cash frozen 150000.00" in out
    # The terminated case (终本): refused while filed today, terminated on the fast clock, re-queried
    # by the worker loop itself, which finds the account opened since, lists it to resume.
    assert "terminate it today: HTTP 422 termination_not_ready" in out
    assert "network_inquiries met, months_since_filing met" in out and "terminated (HTTP 201)" in out
    assert "by gateway:termination) found new: 6222000012345678" in out and "resumable True" in out
    assert "follow-up list: resume bank-a 6222000012345678" in out and "resumed (HTTP 200)" in out
    assert "termination.creditor_noti" in out
    assert "audit log verified" in out
    for number in ("330102198703151122", "330102199205081234"):  # the debtors' numbers only ever masked
        assert number not in out + result.stderr
    assert "3301**********1122" in out


def test_keys_init_and_token(tmp_path):
    runner = CliRunner()
    env = _env(tmp_path)
    first = runner.invoke(main, ["keys", "init"], env=env)
    assert first.exit_code == 0 and "jwks.json" in first.output
    again = runner.invoke(main, ["keys", "init"], env=env)
    assert "already present" in again.output
    key_file = tmp_path / "instance" / "keys" / "signing-key.pem"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"

    issued = runner.invoke(main, ["token", "--role", "court_officer", "--court", "330102", "--sub", "officer.wang"], env=env)
    assert issued.exit_code == 0
    claims = jwt.decode(issued.output.strip(), options={"verify_signature": False})
    assert claims["role"] == "court_officer" and claims["court"] == "330102" and claims["exp"] > claims["iat"]
    jwks = json.loads((tmp_path / "instance" / "keys" / "jwks.json").read_text())
    assert jwt.get_unverified_header(issued.output.strip())["kid"] == jwks["keys"][0]["kid"]

    missing_court = runner.invoke(main, ["token", "--role", "approver", "--sub", "judge.chen"], env=env)
    assert missing_court.exit_code != 0 and "--court" in missing_court.output


def test_a_bad_registry_stops_the_gateway_at_start(tmp_path):
    registry = tmp_path / "agencies.toml"
    registry.write_text('[[agency]]\nid = "psb"\nkind = "public_security"\nname = "x"\ntransport = "rest"\n'
                        'endpoint = "http://127.0.0.1:1/x"\ncategories = ["vehical"]\nactions = ["inquiry"]\n'
                        'deadlines = { inquiry = 60 }\n')
    env = _env(tmp_path)
    Path(env["GATEWAY_CONFIG"]).write_text(
        f'[gateway]\ninstance_dir = "{tmp_path / "instance"}"\nagencies_file = "{registry}"\n')
    result = subprocess.run([GATEWAY, "worker"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert str(registry) in result.stderr and "agency[0] 'psb'" in result.stderr and "'vehical'" in result.stderr


def test_a_transports_bad_settings_stop_the_worker_at_start(tmp_path):
    """Transports are built when the worker starts (not in create_app): their errors are still one line."""
    registry = tmp_path / "agencies.toml"
    registry.write_text('[[agency]]\nid = "land"\nkind = "real_estate"\nname = "x"\ntransport = "sftp"\n'
                        'endpoint = "sftp://gateway@127.0.0.1:1/real-estate"\ncategories = ["real_estate"]\n'
                        'actions = ["inquiry"]\ndeadlines = { inquiry = 600 }\n'
                        'options = { host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC5icWjWU1/S/7BvnShPcZZ4OjtT0Bic2BAfR+KxbzFR", '
                        'client_key = "no-such-key" }\n')
    env = _env(tmp_path)
    Path(env["GATEWAY_CONFIG"]).write_text(
        f'[gateway]\ninstance_dir = "{tmp_path / "instance"}"\nagencies_file = "{registry}"\n')
    assert CliRunner().invoke(main, ["keys", "init"], env=env).exit_code == 0
    result = subprocess.run([GATEWAY, "worker"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"Error: agency 'land': options.client_key: no file at {tmp_path / 'no-such-key'}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["--help"], ["db", "--help"], ["audit", "--help"]])
def test_help_lists_the_commands(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "Usage" in result.output


def _log_in_to_the_demo_console(console_url: str, certfile: str, person: str) -> requests.Session:
    """The console's OIDC login as a browser follows it, over TLS to the demo gateway."""
    browser = requests.Session()
    browser.trust_env, browser.verify = False, certfile
    authorize = browser.get(console_url + "login/start", allow_redirects=False, timeout=10).headers["Location"]
    form = lxml.html.fromstring(browser.get(authorize, timeout=10).text)
    fields = {i.get("name"): i.get("value") for i in form.xpath("//form//input[@type='hidden']")}
    picked = browser.post(authorize.split("?")[0], data={**fields, "person": person}, allow_redirects=False,
                          timeout=10)
    done = browser.get(picked.headers["Location"], allow_redirects=False, timeout=15)
    assert done.status_code == 200, done.text
    return browser


def test_demo_serve_prints_the_console_and_how_to_log_in_as_each(tmp_path):
    """`gateway demo --serve`: the console URL and the demo people are printed, and each logs in
    through the demo identity provider the gateway serves."""
    demo = subprocess.Popen([GATEWAY, "demo", "--serve"], env=_env(tmp_path, PYTHONUNBUFFERED="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        printed = []
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and (not printed or "Ctrl-C to stop." not in printed[-1]):
            line = demo.stdout.readline()
            if not line:
                break
            printed.append(line)
        out = "".join(printed)
        assert "Ctrl-C to stop." in out, out
        console_url, certfile = re.search(r"console: (https://127\.0\.0\.1:\d+/console/) +\(.*?: (\S+)\)", out).groups()
        assert f"{console_url}demo-idp, no passwords" in out
        for person, about in [("officer.wang", "enforcement officer"), ("judge.zhao", "judge"),
                              ("auditor.sun", "auditor")]:
            assert re.search(rf"^  {re.escape(person)} +{about}", out, re.M), out
        officer = _log_in_to_the_demo_console(console_url, certfile, "officer.wang")
        assert "court 330102" in officer.get(console_url + "me?lang=en", timeout=10).text
        judge = _log_in_to_the_demo_console(console_url, certfile, "judge.zhao")
        assert "judge.zhao (approver, court 330102)" in judge.get(console_url + "me?lang=en", timeout=10).text
        auditor = _log_in_to_the_demo_console(console_url, certfile, "auditor.sun")
        # The demo writes a few hundred events first (its terminated case too): ask for the logins.
        events = auditor.get(console_url + "?action=console.login", timeout=10).text
        assert "console.login" in events and "officer.wang" in events  # the officer's login, audited
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=30) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
