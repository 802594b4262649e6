"""``/metrics`` for Prometheus.

Two kinds of figures:

* What the database knows (deliveries by agency and state, queue depth, the age
  of the oldest due delivery): read at scrape time by ``DeliveryTableCollector``,
  so every API process reports the same, correct figures whichever process or
  worker did the work.
* What a process saw (latency per agency and outcome, retries, circuit-breaker
  state): prometheus-client metrics. Under gunicorn each worker process writes
  them to files in ``PROMETHEUS_MULTIPROC_DIR`` (set by ``gateway serve`` before
  forking, emptied at start, a dead worker's gauges dropped by
  ``mark_process_dead``) and any process's scrape adds them all up.

Labels carry agency ids, states and outcomes only: never a subject, a case or
an identity number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import and_, func, select

from gateway.deliveries.breaker import STATES as BREAKER_STATES
from gateway.deliveries.models import Delivery
from gateway.deliveries.states import DeliveryState
from gateway.timeutil import as_utc, utc_now

DELIVERY_STATES = tuple(DeliveryState)
# Agencies answer in milliseconds to tens of seconds; a timeout is the top bucket's business.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class DeliveryMetrics:
    """The figures one process records while delivering (one per app)."""

    def __init__(self, registry: CollectorRegistry | None):
        self.enabled = registry is not None
        if not self.enabled:
            return
        self.registry = registry
        self.latency = Histogram(
            "gateway_delivery_seconds", "One exchange with an agency (encode, send, decode), by outcome",
            ["agency", "outcome"], buckets=LATENCY_BUCKETS, registry=registry)
        self.retries = Counter(
            "gateway_delivery_retries", "Attempts that failed and were scheduled again", ["agency"], registry=registry)
        self.breaker_state = Gauge(
            "gateway_circuit_breaker_state",
            "Processes whose breaker for the agency is in this state (closed, open, half-open)",
            ["agency", "state"], multiprocess_mode="livesum", registry=registry)

    @classmethod
    def disabled(cls) -> DeliveryMetrics:
        return cls(None)

    def observe(self, agency_id: str, outcome: str, seconds: float) -> None:
        if self.enabled:
            self.latency.labels(agency_id, outcome).observe(seconds)

    def retried(self, agency_id: str) -> None:
        if self.enabled:
            self.retries.labels(agency_id).inc()

    def breaker_changed(self, agency_id: str, state: str) -> None:
        if self.enabled:
            for name in BREAKER_STATES:
                self.breaker_state.labels(agency_id, name).set(1 if name == state else 0)


class DeliveryTableCollector(Collector):
    """Per-agency figures read from the deliveries table at scrape time."""

    def __init__(self, db: Any, agency_ids: Iterable[str]):
        self.db, self.agency_ids = db, list(agency_ids)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        now = utc_now()
        by_state = {(a, s): 0 for a in self.agency_ids for s in DELIVERY_STATES}
        depth = {a: 0 for a in self.agency_ids}
        oldest: dict[str, float] = {a: 0.0 for a in self.agency_ids}
        with self.db.reading() as session:
            for agency_id, state, count in session.execute(
                    select(Delivery.agency_id, Delivery.state, func.count()).group_by(Delivery.agency_id, Delivery.state)):
                by_state[(agency_id, state)] = count
            due = and_(Delivery.state == DeliveryState.QUEUED, Delivery.next_attempt_at <= now)
            for agency_id, count, first_due in session.execute(
                    select(Delivery.agency_id, func.count(), func.min(Delivery.next_attempt_at))
                    .where(due).group_by(Delivery.agency_id)):
                depth[agency_id] = count
                oldest[agency_id] = _age(now, first_due)
        deliveries = GaugeMetricFamily("gateway_deliveries", "Deliveries by agency and state (from the database)",
                                       labels=["agency", "state"])
        for (agency_id, state), count in sorted(by_state.items()):
            deliveries.add_metric([agency_id, state], count)
        queue = GaugeMetricFamily("gateway_delivery_queue_depth", "Queued deliveries whose attempt time has come",
                                  labels=["agency"])
        age = GaugeMetricFamily("gateway_delivery_oldest_due_seconds",
                                "How long the oldest due delivery has waited past its attempt time", labels=["agency"])
        for agency_id in sorted(depth):
            queue.add_metric([agency_id], depth[agency_id])
            age.add_metric([agency_id], oldest[agency_id])
        return [deliveries, queue, age]


def _age(now: datetime, then: datetime | None) -> float:
    return max(0.0, (now - as_utc(then)).total_seconds()) if then is not None else 0.0


class _Forward(Collector):
    """This process's own registry, inside the per-scrape one (single-process mode)."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self) -> Iterable[Any]:
        return self.registry.collect()


def render(*, db: Any, agency_ids: Iterable[str], process_registry: CollectorRegistry,
           multiproc_dir: str = "") -> bytes:
    """The exposition text: the database's figures plus every process's (multiprocess
    mode) or this process's own."""
    registry = CollectorRegistry(auto_describe=False)
    if multiproc_dir:
        MultiProcessCollector(registry, path=multiproc_dir)
    else:
        registry.register(_Forward(process_registry))
    registry.register(DeliveryTableCollector(db, agency_ids))
    return generate_latest(registry)
