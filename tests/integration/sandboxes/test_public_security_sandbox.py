"""The public security sandbox, over real HTTP on loopback.

Every exchange goes through ``SandboxServer`` and ``requests`` (no Flask test
client) so bytes, headers and status lines are the ones a gateway would see.
Expectations about the contract are written out here from
``docs/agencies/public-security.md`` rather than imported from the sandbox.
"""

from __future__ import annotations

import ast
import functools
import itertools
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

from sandboxes.public_security import create_app, describe_subject
from sandboxes.server import FaultKnobs, SandboxServer

REPO_ROOT = Path(__file__).resolve().parents[3]
PREFIX = "/psb/v1"
JSON_UTF8 = "application/json; charset=utf-8"
RFC3339_UTC_SECONDS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")

# GB 11643 check digit for 18-digit resident ID numbers.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = "10X98765432"


def resident_id(first_17_digits: str) -> str:
    assert len(first_17_digits) == 17 and first_17_digits.isdigit()
    total = sum(int(digit) * weight for digit, weight in zip(first_17_digits, ID_WEIGHTS))
    return first_17_digits + ID_CHECK_CHARS[total % 11]


def resident_ids(region: str = "110105", birth: str = "19800101") -> Iterator[str]:
    for sequence in range(1000):
        yield resident_id(f"{region}{birth}{sequence:03d}")


def organisation_codes(region: str = "330100") -> Iterator[str]:
    for sequence in range(1000):
        yield f"91{region}MA{sequence:07d}X"


def knows_nothing(id_number: str) -> bool:
    return hashlib.sha256(id_number.encode("utf-8")).digest()[0] % 8 == 0


def first(ids: Iterator[str], predicate: Callable[[str], bool]) -> str:
    return next(candidate for candidate in ids if predicate(candidate))


@functools.lru_cache(maxsize=None)
def rich_subject() -> str:
    """A resident the bureau knows, with at least one vehicle and one sighting."""
    def rich(id_number: str) -> bool:
        data = describe_subject(id_number, "张三")
        return data["HJ"] is not None and len(data["CL"]) >= 1 and len(data["XZ"]) >= 1
    return first(resident_ids(), rich)


def inquiry(id_number: str, *, name: str = "张三", id_type: str = "1",
            categories: tuple[str, ...] | list[Any] = ("HJ", "CL", "XZ"), xxid: str | None = None) -> dict:
    return {
        "Head": {
            "XXID": xxid or str(uuid.uuid4()),
            "CJSJ": "2026-11-23T10:00:00Z",
            "FYDM": "330102",
            "CBR": "officer.wang",
            "AH": "(2024)浙0102执1234号",
            "WSLX": "assistance_notice",
            "WSH": "(2024)浙0102执1234号之一",
        },
        "Query": {"XM": name, "ZJZL": id_type, "ZJHM": id_number, "CXLB": list(categories)},
    }


def encode(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def post(server: SandboxServer, body: bytes, *, message_id: str | None,
         content_type: str = JSON_UTF8) -> requests.Response:
    headers = {"Content-Type": content_type}
    if message_id is not None:
        headers["X-Message-Id"] = message_id
    return requests.post(f"{server.url}{PREFIX}/inquiries", data=body, headers=headers, timeout=10)


def ask(server: SandboxServer, document: dict) -> requests.Response:
    return post(server, encode(document), message_id=document["Head"]["XXID"])


def counters(server: SandboxServer):
    return server.app.extensions["psb_sandbox"]


@pytest.fixture
def start_server() -> Iterator[Callable[..., SandboxServer]]:
    started: list[SandboxServer] = []

    def start(knobs: FaultKnobs | None = None) -> SandboxServer:
        server = SandboxServer(create_app(knobs), port=0).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server) -> SandboxServer:
    return start_server()


# --- Answers ---


def test_valid_inquiry_is_answered_with_the_hash_of_the_exact_body(server):
    id_number = rich_subject()
    document = inquiry(id_number)
    # Unusual but valid formatting: the hash must be of these bytes, not of a re-encoding.
    body = json.dumps(document, ensure_ascii=False, indent=3).encode("utf-8")

    response = post(server, body, message_id=document["Head"]["XXID"])

    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_UTF8
    answer = json.loads(response.content.decode("utf-8"))
    head = answer["Head"]
    assert head["XXID"] == document["Head"]["XXID"]
    assert head["QQSHA256"] == hashlib.sha256(body).hexdigest()
    assert head["RESPONSECODE"] == "0000"
    assert head["RESPONSEINFO"] == "成功"
    assert RFC3339_UTC_SECONDS.fullmatch(head["FKSJ"])
    assert answer["Data"] == describe_subject(id_number, "张三")
    assert "张三" in response.content.decode("utf-8")  # ensure_ascii=False: no \u escapes


@pytest.mark.parametrize("region, city, province", [
    ("110105", "北京市", "京"), ("310101", "上海市", "沪"), ("330102", "浙江省杭州市", "浙"),
    ("440103", "广东省广州市", "粤"), ("520102", "某省某市", "贵"),
])
def test_household_and_vehicles_are_derived_from_the_id_number(server, region, city, province):
    id_number = first(resident_ids(region, "19750615"),
                      lambda n: not knows_nothing(n) and describe_subject(n, "李四", categories=("CL",))["CL"])
    answer = ask(server, inquiry(id_number, name="李四")).json()
    household = answer["Data"]["HJ"]

    assert household["GMSFHM"] == id_number
    assert household["XM"] == "李四"
    assert household["XB"] == ("1" if int(id_number[16]) % 2 else "2")
    assert household["CSRQ"] == "19750615"
    assert household["MZ"] == "01"
    assert re.fullmatch(re.escape(city) + r"\D+\d+号", household["HJDZ"])
    assert all(vehicle["HPHM"].startswith(province) for vehicle in answer["Data"]["CL"])


def test_vehicle_and_whereabouts_records_follow_the_contract():
    vehicle_counts, sighting_counts = set(), set()
    known = (n for n in resident_ids("330102", "19900101") if not knows_nothing(n))
    for id_number in itertools.islice(known, 80):
        data = describe_subject(id_number, "王五")
        vehicle_counts.add(len(data["CL"]))
        sighting_counts.add(len(data["XZ"]))
        for vehicle in data["CL"]:
            assert set(vehicle) == {"HPZL", "HPHM", "CLSBDH", "SYR", "SFZMHM", "ZT", "DYBJ", "CCDJRQ"}
            assert vehicle["HPZL"] == "02"
            assert re.fullmatch(r"浙[A-Z][0-9A-HJ-NP-Z]{5}", vehicle["HPHM"])
            assert re.fullmatch(r"[0-9A-HJ-NPR-Z]{17}", vehicle["CLSBDH"])
            assert (vehicle["SYR"], vehicle["SFZMHM"]) == ("王五", id_number)
            assert vehicle["ZT"] in {"A", "K", "G"} and vehicle["DYBJ"] in {"0", "1"}
            date.fromisoformat(vehicle["CCDJRQ"])
        for sighting in data["XZ"]:
            assert set(sighting) == {"LX", "DD", "SJ"}
            assert sighting["LX"] in {"hotel", "rail", "flight"} and sighting["DD"]
            assert RFC3339_UTC_SECONDS.fullmatch(sighting["SJ"]) and sighting["SJ"].startswith("2026-")
    assert vehicle_counts == {0, 1, 2}
    assert sighting_counts == {0, 1, 2, 3}


def test_data_is_the_same_on_two_servers_and_in_another_process(start_server):
    id_number = rich_subject()
    first_server, second_server = start_server(), start_server()

    first_data = ask(first_server, inquiry(id_number)).json()["Data"]
    second_data = ask(second_server, inquiry(id_number)).json()["Data"]

    script = ("import json, sys; from sandboxes.public_security import describe_subject; "
              "print(json.dumps(describe_subject(sys.argv[1], '张三'), ensure_ascii=False))")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONHASHSEED": "12345", "PYTHONIOENCODING": "utf-8"}
    other_process = subprocess.run([sys.executable, "-c", script, id_number], env=env, check=True,
                                   capture_output=True, text=True, encoding="utf-8", timeout=60)
    assert first_data == second_data == json.loads(other_process.stdout)


@pytest.mark.parametrize("categories", [["HJ"], ["CL"], ["XZ"], ["XZ", "HJ"], ["CL", "XZ"]])
def test_only_the_lists_asked_for_are_answered(server, categories):
    id_number = rich_subject()
    data = ask(server, inquiry(id_number, categories=categories)).json()["Data"]

    assert set(data) == set(categories)
    everything = describe_subject(id_number, "张三")
    assert data == {category: everything[category] for category in categories}


def test_a_subject_the_bureau_knows_nothing_about(server):
    id_number = first(resident_ids("330102", "19850310"), knows_nothing)

    answer = ask(server, inquiry(id_number)).json()

    assert answer["Head"]["RESPONSECODE"] == "0000"
    assert answer["Data"] == {"HJ": None, "CL": [], "XZ": []}


def test_organisations_have_company_vehicles_but_no_household_or_whereabouts(server):
    codes = list(itertools.islice(
        (code for code in organisation_codes("330100") if not knows_nothing(code)), 40))
    counts = set()
    for code in codes[:5]:
        data = ask(server, inquiry(code, name="杭州某某科技有限公司", id_type="8")).json()["Data"]
        assert data == describe_subject(code, "杭州某某科技有限公司", "8")
    for code in codes:
        data = describe_subject(code, "杭州某某科技有限公司", "8")
        assert data["HJ"] is None and data["XZ"] == []
        counts.add(len(data["CL"]))
        for vehicle in data["CL"]:
            assert vehicle["HPHM"].startswith("浙")
            assert (vehicle["SYR"], vehicle["SFZMHM"]) == ("杭州某某科技有限公司", code)
    assert counts == {0, 1, 2, 3}


def test_health_check(server):
    response = requests.get(f"{server.url}{PREFIX}/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# --- Duplicates ---


def test_a_repeated_xxid_gets_the_identical_bytes_and_no_second_effect(server):
    document = inquiry(rich_subject())
    body = encode(document)

    first_answer = post(server, body, message_id=document["Head"]["XXID"])
    time.sleep(1.1)  # FKSJ has second precision: a re-rendered answer would differ
    repeat = post(server, body, message_id=document["Head"]["XXID"])

    assert first_answer.status_code == repeat.status_code == 200
    assert repeat.content == first_answer.content
    state = counters(server)
    assert (state.answered_count, state.duplicate_count, state.calls) == (1, 1, 2)


def test_a_repeat_is_answered_by_xxid_even_if_the_query_changed(server):
    document = inquiry(rich_subject())
    first_answer = ask(server, document)
    document["Query"]["CXLB"] = ["HJ"]

    repeat = ask(server, document)

    assert repeat.content == first_answer.content
    assert counters(server).answered_count == 1


def test_concurrent_repeats_produce_one_answer(server):
    document = inquiry(rich_subject())
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: ask(server, document).content, range(8)))

    assert len(set(answers)) == 1
    state = counters(server)
    assert (state.answered_count, state.duplicate_count, state.calls) == (1, 7, 8)


# --- Contract violations ---


def _drop(path: str) -> Callable[[dict], None]:
    section, key = path.split(".") if "." in path else (None, path)
    return lambda doc: (doc[section] if section else doc).pop(key)


def _set(section: str, key: str, value: Any) -> Callable[[dict], None]:
    return lambda doc: doc[section].__setitem__(key, value)


VIOLATIONS = [
    # (case, change to the document, field RESPONSEINFO must name, XXID readable)
    ("missing Head.CBR", _drop("Head.CBR"), "Head.CBR", True),
    ("missing Query.XM", _drop("Query.XM"), "Query.XM", True),
    ("missing Query", _drop("Query"), "Query", True),
    ("unknown top-level field", lambda doc: doc.__setitem__("Extra", 1), "Extra", True),
    ("unknown Head field", _set("Head", "XXLX", "x"), "Head.XXLX", True),
    ("unknown Query field", _set("Query", "XB", "1"), "Query.XB", True),
    ("empty CXLB", _set("Query", "CXLB", []), "Query.CXLB", True),
    ("repeated CXLB", _set("Query", "CXLB", ["HJ", "CL", "HJ"]), "Query.CXLB[2]", True),
    ("unknown CXLB value", _set("Query", "CXLB", ["HJ", "FC"]), "Query.CXLB[1]", True),
    ("CXLB not a list", _set("Query", "CXLB", "HJ"), "Query.CXLB", True),
    ("WSLX without WSH", _drop("Head.WSH"), "Head.WSH", True),
    ("WSH without WSLX", _drop("Head.WSLX"), "Head.WSLX", True),
    ("ZJZL not 1 or 8", _set("Query", "ZJZL", "2"), "Query.ZJZL", True),
    ("ZJZL a number", _set("Query", "ZJZL", 1), "Query.ZJZL", True),
    ("ZJHM not 18 characters", _set("Query", "ZJHM", "11010519491231002"), "Query.ZJHM", True),
    ("CJSJ not UTC", _set("Head", "CJSJ", "2026-11-23T18:00:00+08:00"), "Head.CJSJ", True),
    ("CJSJ not RFC 3339", _set("Head", "CJSJ", "2026-11-23 10:00:00"), "Head.CJSJ", True),
    ("FYDM too long", _set("Head", "FYDM", "3" * 33), "Head.FYDM", True),
    ("AH empty", _set("Head", "AH", ""), "Head.AH", True),
    ("XXID too long", _set("Head", "XXID", "x" * 65), "Head.XXID", False),
    ("Head not an object", lambda doc: doc.__setitem__("Head", []), "Head", False),
]


@pytest.mark.parametrize("change, field, xxid_readable",
                         [case[1:] for case in VIOLATIONS], ids=[case[0] for case in VIOLATIONS])
def test_contract_violations_are_refused_naming_the_field(server, change, field, xxid_readable):
    document = inquiry(rich_subject(), xxid="0b7f0c9e-3d0e-4a53-9d7e-1f7a1c1b2d3e")
    change(document)
    header = document["Head"]["XXID"] if isinstance(document.get("Head"), dict) else "x"

    response = post(server, encode(document), message_id=header)

    assert_refused(response, field)
    assert response.json()["Head"].get("XXID") == ("0b7f0c9e-3d0e-4a53-9d7e-1f7a1c1b2d3e" if xxid_readable else None)
    assert counters(server).answered_count == 0


def assert_refused(response: requests.Response, field: str) -> None:
    assert response.status_code == 400
    assert response.headers["Content-Type"] == JSON_UTF8
    answer = response.json()
    assert "Data" not in answer
    assert answer["Head"]["RESPONSECODE"] == "3000"
    assert answer["Head"]["RESPONSEINFO"].startswith(f"{field}: "), answer["Head"]["RESPONSEINFO"]


@pytest.mark.parametrize("message_id", [None, "another-id"], ids=["missing", "different"])
def test_the_message_id_header_must_equal_the_xxid(server, message_id):
    document = inquiry(rich_subject())
    response = post(server, encode(document), message_id=message_id)
    assert_refused(response, "X-Message-Id")
    assert response.json()["Head"]["XXID"] == document["Head"]["XXID"]


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", "{\"Head\": 1".encode(), b"\xff\xfe{}",
                                  b'{"Head": {}, "Head": {}}', b'{"Head": NaN}'],
                         ids=["text", "array", "truncated", "not utf-8", "repeated key", "NaN"])
def test_a_body_that_is_not_a_json_object_is_refused(server, body):
    response = post(server, body, message_id="m-1")
    assert_refused(response, "body")
    assert "XXID" not in response.json()["Head"]


def test_a_body_sent_as_another_content_type_is_refused(server):
    document = inquiry(rich_subject())
    response = post(server, encode(document), message_id=document["Head"]["XXID"], content_type="text/plain")
    assert_refused(response, "Content-Type")


def test_a_body_over_64_kib_is_refused(server):
    document = inquiry(rich_subject())
    document["Head"]["AH"] = "案" * 30_000  # 90 000 bytes in UTF-8
    response = ask(server, document)
    assert_refused(response, "body")


@pytest.mark.parametrize("created", ["2026-11-23T10:00:00.250Z", "2026-11-23T10:00:00+00:00"])
def test_other_rfc3339_utc_spellings_and_no_legal_basis_are_accepted(server, created):
    document = inquiry(rich_subject())
    document["Head"]["CJSJ"] = created
    del document["Head"]["WSLX"], document["Head"]["WSH"]
    assert ask(server, document).status_code == 200


# --- Faults ---


def test_failure_rate_one_always_answers_503_and_remembers_nothing(start_server):
    server = start_server(FaultKnobs(failure_rate=1.0))
    document = inquiry(rich_subject())

    responses = [ask(server, document) for _ in range(3)]

    for response in responses:
        assert response.status_code == 503
        answer = response.json()
        assert answer["Head"]["RESPONSECODE"] == "1000"
        assert answer["Head"]["XXID"] == document["Head"]["XXID"]
        assert "Data" not in answer
    state = counters(server)
    assert (state.calls, state.answered_count, state.duplicate_count) == (3, 0, 0)


def test_a_call_is_seen_arriving_before_its_latency_is_over(start_server):
    # What the crash test waits for: the message is at the agency, its answer not yet back.
    server = start_server(FaultKnobs(latency_seconds=0.5))
    document = inquiry(rich_subject())
    with ThreadPoolExecutor(max_workers=1) as pool:
        answer = pool.submit(ask, server, document)
        give_up = time.monotonic() + 5
        while document["Head"]["XXID"] not in counters(server).arrived:
            assert time.monotonic() < give_up, "the call never arrived"
            time.sleep(0.005)
        assert not answer.done() and counters(server).answered_count == 0
        assert answer.result().status_code == 200
    too_deep = post(server, b"[" * 60_000, message_id=None)  # a call with no XXID to note, refused
    assert too_deep.status_code == 400 and too_deep.json()["Head"]["RESPONSECODE"] == "3000"
    assert "body: nests arrays and objects too deep" in too_deep.json()["Head"]["RESPONSEINFO"]
    assert counters(server).arrived == [document["Head"]["XXID"], None]


def test_failure_rate_zero_never_fails(start_server):
    server = start_server(FaultKnobs(failure_rate=0.0))
    statuses = {ask(server, inquiry(rich_subject())).status_code for _ in range(30)}
    assert statuses == {200}
    assert counters(server).answered_count == 30


def test_seeded_failures_repeat_and_a_retry_after_503_is_answered(start_server):
    knobs = FaultKnobs(failure_rate=0.5, seed=11)
    document = inquiry(rich_subject())
    runs = []
    for _ in range(2):
        server = start_server(knobs)
        runs.append([ask(server, document).status_code for _ in range(20)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 503}
    # The same XXID retried after 503s: one answer, later ones are duplicates.
    state = counters(server)
    assert state.answered_count == 1
    assert state.duplicate_count == runs[1].count(200) - 1


def test_latency_is_applied_to_every_call(start_server):
    server = start_server(FaultKnobs(latency_seconds=0.3))
    started = time.monotonic()
    response = post(server, b"not json", message_id=None)
    assert response.status_code == 400
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("knobs, field", [
    ({"failure_rate": -0.1}, "failure_rate"), ({"failure_rate": 1.5}, "failure_rate"),
    ({"failure_rate": float("nan")}, "failure_rate"), ({"latency_seconds": -1}, "latency_seconds"),
    ({"latency_jitter_seconds": -0.5}, "latency_jitter_seconds"),
    ({"latency_seconds": float("inf")}, "latency_seconds"), ({"failure_rate": "0.5"}, "failure_rate"),
    ({"seed": "7"}, "seed"),
])
def test_fault_knobs_refuse_bad_values_naming_the_field(knobs, field):
    with pytest.raises(ValueError, match=field):
        FaultKnobs(**knobs)


def test_fault_knob_decisions_are_reproducible_and_bounded():
    import random

    knobs = FaultKnobs(latency_seconds=0.1, latency_jitter_seconds=0.2, failure_rate=0.3)
    first_rng, second_rng = random.Random(5), random.Random(5)
    decisions = [knobs.decide(first_rng) for _ in range(200)]
    assert decisions == [knobs.decide(second_rng) for _ in range(200)]
    assert all(0.1 <= d.delay_seconds <= 0.3 for d in decisions)
    assert 20 < sum(d.fail for d in decisions) < 100
    assert all(FaultKnobs(failure_rate=1.0).decide(first_rng).fail for _ in range(100))
    assert not any(FaultKnobs().decide(first_rng).fail for _ in range(100))


# --- Server and independence ---


def test_the_server_binds_a_free_loopback_port_and_releases_it():
    with SandboxServer(create_app()) as server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        port = server.bound_port
        assert port > 0
        assert requests.get(f"{server.url}{PREFIX}/healthz", timeout=10).status_code == 200
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_the_server_refuses_non_loopback_hosts():
    with pytest.raises(ValueError, match="loopback"):
        SandboxServer(create_app(), host="0.0.0.0")


def test_describe_subject_refuses_unknown_id_types_and_categories():
    with pytest.raises(ValueError, match="id_type"):
        describe_subject("11010519491231002X", "张三", id_type="2")
    with pytest.raises(ValueError, match="categories"):
        describe_subject("11010519491231002X", "张三", categories=("HJ", "FC"))


def test_sandboxes_do_not_import_the_gateway_side():
    # Sandboxes may use schemas (the hardened XML parser, the agencies' XSDs); never the gateway's side.
    forbidden = {"gateway", "adapters", "audit"}
    for module in (REPO_ROOT / "sandboxes").glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not {name.split(".")[0] for name in names} & forbidden, f"{module.name} imports {names}"
