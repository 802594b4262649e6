"""The housekeeper: periodic background work in a thread apart from dispatch, and
in one process at a time (a lease another takes over when the holder stops or dies).

Two apps on one database stand for two processes (each has its own engine)."""

import threading
import time
from datetime import timedelta

from conftest import Api, make_app
from gateway.background.housekeeper import LEASE_NAME, Housekeeper
from gateway.deliveries.models import ChannelLease
from gateway.timeutil import utc_now
from sandboxes.server import SandboxServer


def _until(condition, timeout=15.0):
    give_up = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < give_up, "timed out waiting"
        time.sleep(0.02)


def _counting(housekeeper: Housekeeper, every_process: bool = False) -> list[int]:
    ran: list[int] = []
    housekeeper.add("count", lambda: ran.append(1), every_seconds=0.02, every_process=every_process)
    return ran


def test_two_apps_race_for_the_lease_one_runs_the_tasks_the_other_takes_over(overrides, psb_sandbox):
    apps = [make_app(overrides, {"psb": psb_sandbox.url}) for _ in range(2)]
    keepers = [Housekeeper(a.extensions["db"], lease_seconds=30, try_every_seconds=0.05) for a in apps]
    counts = [_counting(k) for k in keepers]
    try:
        for k in keepers:
            k.start()
        _until(lambda: any(len(c) >= 5 for c in counts))
        holder = next(i for i in (0, 1) if len(counts[i]) >= 5)
        other = 1 - holder
        seen = keepers[other].lease_looks
        _until(lambda: keepers[other].lease_looks >= seen + 3)  # it kept trying, and kept being refused
        assert keepers[holder].holding and not keepers[other].holding
        assert counts[other] == []

        keepers[holder].stop()  # a clean stop hands the lease over at once
        stopped_at = len(counts[holder])
        _until(lambda: len(counts[other]) >= 3)
        assert keepers[other].holding and not keepers[holder].holding
        assert len(counts[holder]) == stopped_at
        with apps[0].extensions["db"].reading() as session:
            assert session.get(ChannelLease, LEASE_NAME).holder == keepers[other].holder
    finally:
        for k in keepers:
            k.stop()
        for a in apps:
            a.extensions["db"].dispose()


def test_a_dead_holders_lease_is_taken_over_once_it_lapses(app):
    db = app.extensions["db"]
    with db.transaction() as session:  # a process that died holding the lease: its row stays
        session.add(ChannelLease(name=LEASE_NAME, holder="dead-host:1:0", lease_until=utc_now() + timedelta(seconds=1)))
    keeper = Housekeeper(db, lease_seconds=30, try_every_seconds=0.05)
    leased = _counting(keeper)
    local: list[int] = []
    keeper.add("local", lambda: local.append(1), every_seconds=0.02, every_process=True)
    try:
        keeper.start()
        _until(lambda: keeper.lease_looks >= 2 and len(local) >= 2)
        if not keeper.holding:  # the machine may be slow enough for the dead lease to have lapsed already
            assert leased == []  # refused while the dead holder's lease ran; its own work went on
        _until(lambda: len(leased) >= 2)
        assert keeper.holding
        with db.reading() as session:
            assert session.get(ChannelLease, LEASE_NAME).holder == keeper.holder
    finally:
        keeper.stop()
    with db.reading() as session:
        assert session.get(ChannelLease, LEASE_NAME) is None  # released on stop


def test_dispatch_goes_on_while_a_housekeeping_task_is_slow(app, settings):
    housekeeper = app.extensions["housekeeper"]
    entered, release = threading.Event(), threading.Event()

    def slow_task():
        entered.set()
        release.wait(30)

    housekeeper.add("slow", slow_task, every_seconds=0.05)
    server = SandboxServer(app).start()
    api = Api(server.url, settings)
    worker = app.extensions["worker"].start()  # starts the housekeeper too
    try:
        _until(entered.is_set)
        assert housekeeper.running and housekeeper.holding
        assert api.register_case().status_code == 201
        reply = api.inquire()
        assert reply.status_code == 202, reply.text
        request_id = reply.json()["id"]
        _until(lambda: api.get(f"/api/v1/requests/{request_id}").json()["state"] == "completed")
        assert not release.is_set() and housekeeper.runs("slow") == 0  # still inside its first run
    finally:
        release.set()
        worker.stop()
        server.stop()
    assert not housekeeper.running and housekeeper.runs("slow") == 1
    with app.extensions["db"].reading() as session:
        assert session.get(ChannelLease, LEASE_NAME) is None


def test_the_app_registers_its_background_work_and_refuses_a_second_task_of_one_name(app):
    housekeeper = app.extensions["housekeeper"]
    assert housekeeper.task_names == ["audit_checkpoints", "refusal_summaries", "request_counts", "control_housekeeping",
                                      "webhooks",
                                      "batch_expander", "termination_watch"]
    try:
        housekeeper.add("webhooks", lambda: None, every_seconds=1.0)
    except ValueError as error:
        assert "webhooks" in str(error) and "already" in str(error)
    else:
        raise AssertionError("a second task named webhooks was accepted")
