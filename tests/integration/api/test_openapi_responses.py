"""The OpenAPI document describes every success body: each 2xx response of every
path and method has a content schema (JSON, or a string for files and CSV), and
the auditor endpoints' documented schemas name the fields their bodies carry."""

from __future__ import annotations


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _no_content_is_fine(status: str) -> bool:
    return status == "204"  # "no content" has no body to describe


def test_every_success_response_has_a_content_schema(api):
    spec = api.get("/api/v1/openapi.json", token=None).json()
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
            if not successes:
                missing.append(f"{method.upper()} {path}: no 2xx response documented")
            for status, response in successes.items():
                if _no_content_is_fine(status):
                    continue
                content = response.get("content") or {}
                if not content or not all("schema" in body for body in content.values()):
                    missing.append(f"{method.upper()} {path} {status}")
                for media_type, body in content.items():
                    if media_type != "application/json":  # files, CSV, JSON lines: text or bytes
                        assert _resolve(spec, body["schema"]).get("type") == "string", (path, media_type)
    assert not missing, "\n".join(missing)


def test_the_auditor_endpoints_document_what_their_bodies_carry(api):
    spec = api.get("/api/v1/openapi.json", token=None).json()

    def properties(path: str) -> set[str]:
        body = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        return set(_resolve(spec, body)["properties"])

    assert properties("/api/v1/audit/events") == {"events", "next_cursor"}
    event = _resolve(spec, _resolve(spec, spec["paths"]["/api/v1/audit/events"]["get"]["responses"]["200"]
                                    ["content"]["application/json"]["schema"])["properties"]["events"]["items"])
    assert {"seq", "at", "action", "outcome", "details", "prev_hash", "hash", "subject_masked"} <= set(event["properties"])
    assert {"ok", "first_bad_seq", "kind", "events_checked", "sealed", "unsealed_events"} <= properties("/api/v1/audit/verify")
    assert properties("/api/v1/audit/checkpoints") == {"checkpoints"}
    assert properties("/api/v1/audit/anomalies") == {"anomalies", "since", "until"}
    assert {"event", "leaf_index", "leaf_hash", "tree_size", "root_hash", "audit_path",
            "checkpoint"} == properties("/api/v1/audit/proofs/inclusion")
    assert {"from", "to", "from_root", "to_root", "consistency_path", "from_checkpoint",
            "to_checkpoint"} == properties("/api/v1/audit/proofs/consistency")
    export = spec["paths"]["/api/v1/audit/events/export"]["get"]["responses"]["200"]["content"]
    assert set(export) == {"text/csv", "application/x-ndjson"}


def test_the_auditor_bodies_load_with_their_documented_schemas(api, app):
    """Each documented schema holds the real body: every field named, none undocumented."""
    from conftest import OTHER_PERSON
    from schemas.canonical import (
        AnomalyListSchema, AuditCheckpointListSchema, AuditConsistencyProofSchema, AuditEventPageSchema,
        AuditInclusionProofSchema, AuditVerifySchema,
    )

    assert api.register_case().status_code == 201
    assert api.inquire().status_code == 202
    assert api.inquire(subject=OTHER_PERSON).status_code == 403  # a refusal, for an anomaly
    app.extensions["worker"].drain()
    app.extensions["audit_checkpoints"].write_now()
    auditor = api.token(role="auditor", court=None, sub="auditor.zhao")
    for path, schema, non_empty in (("/api/v1/audit/events?limit=5", AuditEventPageSchema, "events"),
                                    ("/api/v1/audit/verify", AuditVerifySchema, "events_checked"),
                                    ("/api/v1/audit/checkpoints", AuditCheckpointListSchema, "checkpoints"),
                                    ("/api/v1/audit/anomalies", AnomalyListSchema, "anomalies"),
                                    ("/api/v1/audit/proofs/inclusion?event=2", AuditInclusionProofSchema, "checkpoint"),
                                    ("/api/v1/audit/proofs/consistency?from=1&to=3", AuditConsistencyProofSchema,
                                     "consistency_path")):
        reply = api.get(path, token=auditor)
        assert reply.status_code == 200, path
        body = reply.json()
        assert body[non_empty], path
        assert schema().load(body) is not None  # raises on an undocumented or mistyped field
