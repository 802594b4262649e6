"""`gateway serve` as operators run it: gunicorn (gthread) workers, each building
its own database engine after fork and running in-process delivery workers."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from conftest import Api, CASE_NUMBER, write_registry

GATEWAY = str(Path(sys.executable).parent / "gateway")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_an_inquiry_end_to_end(database_url, keys_dir, settings, agencies, tmp_path):
    """Two gunicorn processes, each with its delivery worker, and all seven agencies of
    the default registry over SOAP, SFTP and REST."""
    registry = write_registry(tmp_path / "agencies.toml", agencies.endpoints)
    config = tmp_path / "settings.toml"
    config.write_text(
        f'[gateway]\ninstance_dir = "{tmp_path / "instance"}"\nagencies_file = "{registry}"\nlog_level = "WARNING"\n'
        f'[auth]\njwks_file = "{keys_dir / "jwks.json"}"\nsigning_key_file = "{keys_dir / "signing-key.pem"}"\n'
        f'[audit]\nsubject_key_file = "{keys_dir / "subject-hash.key"}"\n'
        '[workers]\npoll_interval_seconds = 0.05\n')
    port = _free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
           "GATEWAY_CONFIG": str(config), "GATEWAY_DATABASE_URL": database_url}
    server = subprocess.Popen([GATEWAY, "serve", "--port", str(port), "--workers", "2", "--threads", "2"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # a worker still booting on a loaded machine
                pass
            assert server.poll() is None and time.monotonic() < deadline, "gateway serve did not become ready"
            time.sleep(0.1)
        api = Api(base, settings)
        registered = api.register_case()
        assert registered.status_code == 201
        debtor_id = next(p["subject"]["id"] for p in registered.json()["parties"] if p["role"] == "debtor")
        accepted = api.inquire()
        assert accepted.status_code == 202
        deadline = time.monotonic() + 30
        while (state := api.get(f"/api/v1/requests/{accepted.json()['id']}").json())["state"] != "completed":
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
        assert {(d["agency"], d["transport"], d["state"]) for d in state["deliveries"]} == {
            ("bank-a", "soap", "answered"), ("bank-b", "soap", "answered"), ("bank-national", "sftp", "answered"),
            ("tax", "soap", "answered"), ("psb", "rest", "answered"), ("land", "sftp", "answered"),
            ("samr", "rest", "answered")}
        report = api.get(f"/api/v1/cases/{CASE_NUMBER}/subjects/{debtor_id}/assets").json()
        assert report["gaps"] == [] and any(a["category"] == "identity" for a in report["assets"])
        by_number = api.get(f"/api/v1/cases/{CASE_NUMBER}/subjects/330102198703151157/assets")
        assert by_number.json() == {**report, "as_of": by_number.json()["as_of"]}
        # /metrics adds up both gunicorn workers (multiprocess mode), whichever one answered the scrape.
        for _ in range(4):
            metrics = requests.get(base + "/metrics", timeout=5).text
            assert 'gateway_delivery_seconds_count{agency="psb",outcome="answered"} 1.0' in metrics, metrics
            assert 'gateway_circuit_breaker_state{agency="psb",state="closed"} 2.0' in metrics
            assert 'gateway_deliveries{agency="psb",state="answered"} 1.0' in metrics
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    # The access log saw the number in a URL and wrote it masked.
    assert "3301**********1157/assets" in output and "330102198703151157" not in output


def test_a_separate_worker_process_delivers_what_the_api_accepted(api, app, database_url, keys_dir, psb_sandbox, tmp_path):
    """The API process only accepts (its worker is not started); `gateway worker`,
    another process on the same database, carries the delivery out."""
    assert api.register_case().status_code == 201
    request_id = api.inquire().json()["id"]
    assert api.get(f"/api/v1/requests/{request_id}").json()["state"] == "accepted"

    registry = write_registry(tmp_path / "agencies.toml", {"psb": psb_sandbox.url})
    config = tmp_path / "worker.toml"
    config.write_text(
        f'[gateway]\ninstance_dir = "{tmp_path / "instance"}"\nagencies_file = "{registry}"\nlog_level = "WARNING"\n'
        f'[auth]\njwks_file = "{keys_dir / "jwks.json"}"\n[audit]\nsubject_key_file = "{keys_dir / "subject-hash.key"}"\n')
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
           "GATEWAY_CONFIG": str(config), "GATEWAY_DATABASE_URL": database_url}
    worker = subprocess.Popen([GATEWAY, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while (state := api.get(f"/api/v1/requests/{request_id}").json())["state"] != "completed":
            assert worker.poll() is None and time.monotonic() < deadline, state
            time.sleep(0.1)
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output
    assert "delivery worker running for agencies: psb" in output
    assert psb_sandbox.app.extensions["psb_sandbox"].answered_count >= 1


def test_serve_with_sandboxes_stops_on_sigterm_and_frees_every_port(tmp_path, keys_dir):
    """SIGTERM to `serve --with-sandboxes`: gunicorn's workers, the sandboxes' process and
    the master all exit within the graceful timeout, and the sandboxes' ports are free
    for the next start (a forked worker used to hang in the sandboxes' stop, holding them)."""
    from sandboxes.run import HTTP_SANDBOXES, SFTP_PORT

    sandbox_ports = [p for p, _prefix, _factory in HTTP_SANDBOXES.values()] + [SFTP_PORT]

    config = tmp_path / "settings.toml"
    config.write_text(
        f'[gateway]\ninstance_dir = "{tmp_path / "instance"}"\nlog_level = "WARNING"\n'
        f'[auth]\njwks_file = "{keys_dir / "jwks.json"}"\nsigning_key_file = "{keys_dir / "signing-key.pem"}"\n'
        f'[audit]\nsubject_key_file = "{keys_dir / "subject-hash.key"}"\n')
    port = _free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}, "GATEWAY_CONFIG": str(config)}
    server = subprocess.Popen([GATEWAY, "serve", "--with-sandboxes", "--port", str(port), "--workers", "2"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert server.poll() is None and time.monotonic() < deadline, "gateway serve did not become ready"
            time.sleep(0.2)
        for sandbox_port in sandbox_ports:  # every sandbox answers
            socket.create_connection(("127.0.0.1", sandbox_port), timeout=5).close()
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)  # gunicorn's graceful timeout is 45 s at most
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert server.returncode == 0, output
    # Nothing of it is left in its session (no hung worker, no sandbox process) ...
    left = subprocess.run(["ps", "-o", "pid=", "-s", str(server.pid)], capture_output=True, text=True).stdout.split()
    assert left == [], f"processes left behind: {left}\n{output}"
    # ... and every port can be bound again at once.
    for sandbox_port in sandbox_ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", sandbox_port))
