"""The distribution plan (gateway/creditors/distribution.py): exact shares, the rounding rule, priorities."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.creditors.distribution import Claim, distribute

CLASSES = ["enforcement_costs", "secured", "wages", "taxes", "ordinary"]
cents = st.integers(min_value=0, max_value=10**13).map(lambda n: Decimal(n) / 100)
claims = st.lists(st.tuples(cents, st.sampled_from(CLASSES)), min_size=1, max_size=12).map(
    lambda items: [Claim(f"case-{i}", amount, priority, rank=i) for i, (amount, priority) in enumerate(items)])


@settings(max_examples=400, deadline=None)
@given(amount=cents, claims=claims)
def test_shares_and_surplus_sum_exactly_to_the_amount(amount, claims):
    plan = distribute(amount, claims, CLASSES)
    assert sum((s.share for s in plan.shares), Decimal("0")) + plan.surplus == amount
    assert all(s.share.as_tuple().exponent >= -2 for s in plan.shares)  # whole cents


@settings(max_examples=400, deadline=None)
@given(amount=cents, claims=claims)
def test_no_share_exceeds_its_claim_and_lower_classes_wait_for_higher(amount, claims):
    plan = distribute(amount, claims, CLASSES)
    assert all(Decimal("0") <= s.share <= s.claim for s in plan.shares)
    rank = {name: i for i, name in enumerate(CLASSES)}
    for s in plan.shares:
        if s.share > 0:  # anyone paid means every higher class was paid in full
            assert all(o.share == o.claim for o in plan.shares if rank[o.priority] < rank[s.priority])
    if plan.surplus > 0:
        assert all(s.share == s.claim for s in plan.shares)


@settings(max_examples=400, deadline=None)
@given(amount=cents, claims=claims)
def test_within_the_class_money_runs_out_in_each_share_is_within_a_cent_of_proportional(amount, claims):
    plan = distribute(amount, claims, CLASSES)
    rank = {name: i for i, name in enumerate(CLASSES)}
    short = [s for s in plan.shares if s.share < s.claim]
    if not short:
        return
    cls = min(rank[s.priority] for s in short)
    members = [s for s in plan.shares if rank[s.priority] == cls]
    pool = sum((s.share for s in members), Decimal("0"))
    total = sum((s.claim for s in members), Decimal("0"))
    for s in members:
        exact = pool * s.claim / total
        assert abs(s.share - exact) < Decimal("0.01")


def test_the_rounding_rule_largest_remainder_then_the_earlier_claim():
    three = [Claim("a", Decimal("100.00"), "ordinary", 0), Claim("b", Decimal("100.00"), "ordinary", 1),
             Claim("c", Decimal("100.00"), "ordinary", 2)]
    plan = distribute(Decimal("100.00"), three, CLASSES)
    # 33.333... each: 33.33 each, the cent left goes to the first to freeze.
    assert [s.share for s in plan.shares] == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]
    uneven = [Claim("a", Decimal("10.00"), "ordinary", 5), Claim("b", Decimal("20.00"), "ordinary", 0)]
    # 0.10 over 10 and 20: 0.0333.. and 0.0666..; the larger remainder (b's .66) takes the cent.
    assert [s.share for s in distribute(Decimal("0.10"), uneven, CLASSES).shares] == [Decimal("0.03"), Decimal("0.07")]


def test_a_higher_class_is_paid_in_full_first_and_the_surplus_is_returned():
    plan = distribute(Decimal("1000.00"), [Claim("tax", Decimal("300.00"), "taxes"),
                                           Claim("wage", Decimal("500.00"), "wages"),
                                           Claim("bank", Decimal("800.00"), "ordinary")], CLASSES)
    assert [s.share for s in plan.shares] == [Decimal("300.00"), Decimal("500.00"), Decimal("200.00")]
    assert plan.surplus == 0
    rich = distribute(Decimal("2000.00"), [Claim("bank", Decimal("800.00"), "ordinary")], CLASSES)
    assert rich.shares[0].share == Decimal("800.00") and rich.surplus == Decimal("1200.00")


@pytest.mark.parametrize("amount, claims, why", [
    (Decimal("1.005"), [Claim("a", Decimal("1"), "ordinary")], "multiple of 0.01"),
    (Decimal("-1"), [Claim("a", Decimal("1"), "ordinary")], "non-negative"),
    (Decimal("1"), [Claim("a", Decimal("1"), "friends")], "unknown priority class"),
    (Decimal("1"), [Claim("a", Decimal("1"), "ordinary"), Claim("a", Decimal("2"), "ordinary")], "once"),
])
def test_bad_input_is_refused(amount, claims, why):
    with pytest.raises(ValueError, match=why):
        distribute(amount, claims, CLASSES)
