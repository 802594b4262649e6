"""One court clock: every date a court sees is the Beijing date, never the UTC date.

Between 00:00 and 08:00 Beijing time the UTC date is still yesterday's. A freeze
proposed at 23:30 Beijing time (15:30 UTC) runs from that day; one proposed at 00:30
(16:30 UTC, the same UTC date) runs from the next. The app's clock is fixed at those
moments; the order the worker writes for the bank carries the court's date as KSRQ.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from lxml import etree

from gateway.controls.terms import add_months
from gateway.deliveries import progress
from gateway.deliveries.models import Delivery
from gateway.timeutil import court_date
from test_agency_actions import (  # noqa: F401 (fixtures)
    BASIS, CASE, DEBTOR, agencies, app, assets, court, inquire, report, settle, submit,
)

# The same UTC date, on either side of midnight in Beijing.
BEFORE_MIDNIGHT = datetime(2026, 6, 30, 15, 30, tzinfo=timezone.utc)  # 23:30 on 30 June, Beijing
AFTER_MIDNIGHT = datetime(2026, 6, 30, 16, 30, tzinfo=timezone.utc)   # 00:30 on 1 July, Beijing


def test_the_court_date_is_the_beijing_date_either_side_of_midnight():
    assert court_date(BEFORE_MIDNIGHT) == date(2026, 6, 30)
    assert court_date(AFTER_MIDNIGHT) == date(2026, 7, 1)
    assert BEFORE_MIDNIGHT.date() == AFTER_MIDNIGHT.date() == date(2026, 6, 30)  # what the UTC date would say


@pytest.mark.parametrize("moment, court_day", [(BEFORE_MIDNIGHT, date(2026, 6, 30)), (AFTER_MIDNIGHT, date(2026, 7, 1))],
                         ids=["23:30 Beijing", "00:30 Beijing"])
def test_a_freeze_term_and_its_start_date_follow_the_court_date(court, app, agencies, moment, court_day):
    inquire(court, app)
    (account,) = sorted(assets(report(court), "bank-a", "deposit"), key=lambda a: a["balance"])[-1:]
    app.extensions["clock"] = lambda: moment
    reply = submit(court, "freeze", amount="100.00", targets=[account["id"]], legal_basis=BASIS)
    assert reply.status_code == 202, reply.text
    request_id = reply.json()["id"]

    # The term is planned at intake: deposits 12 months from the court's date.
    with app.extensions["db"].reading() as session:
        (delivery_id,) = session.scalars(
            Delivery.__table__.select().with_only_columns(Delivery.id).where(Delivery.request_id == request_id))
        (line,) = session.get(Delivery, delivery_id).lines
        assert line["until"] == add_months(court_day, 12).isoformat()
        # The order the worker writes at that moment starts the freeze on the court's date.
        order, _address = progress.load_orders(session, [delivery_id], now=moment)[delivery_id]
    envelope = app.extensions["worker"].channels["bank-a"].encode(order)
    body = etree.fromstring(envelope.body)
    (start,) = body.xpath("//*[local-name()='KSRQ']/text()")
    assert start == court_day.isoformat()
