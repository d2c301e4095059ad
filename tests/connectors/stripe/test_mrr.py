"""``mrr`` on Stripe customer records: billing subscriptions' items, price times quantity per month, major units."""

from __future__ import annotations

from typing import Any

from connectors.stripe import StripeConnector
from connectors.stripe.records import monthly_revenue
from sandbox.stripe.objects import PLANS
from sandbox.stripe.seed import customer_id, status_for
from tests.connectors.stripe.conftest import StripeStandIn


def sub(status: str, *items: tuple[int | None, int, str, int, str]) -> dict[str, Any]:
    return {
        "status": status,
        "items": {
            "data": [
                {
                    "quantity": quantity,
                    "price": {
                        "unit_amount": amount,
                        "unit_amount_decimal": None if amount is None else str(amount),
                        "currency": currency,
                        "recurring": {"interval": interval, "interval_count": count, "usage_type": "licensed"},
                    },
                }
                for amount, quantity, interval, count, currency in items
            ]
        },
    }


def test_monthly_revenue_normalises_intervals_quantities_and_currencies() -> None:
    assert monthly_revenue([sub("active", (2900, 3, "month", 1, "usd"))]) == 87.0
    assert monthly_revenue([sub("active", (120000, 1, "year", 1, "usd"))]) == 100.0
    assert monthly_revenue([sub("active", (6000, 1, "month", 3, "eur"))]) == 20.0  # quarterly
    assert monthly_revenue([sub("past_due", (1000, 1, "week", 1, "usd"))]) == round(10 * 52 / 12, 2)
    assert monthly_revenue([sub("active", (5000, 1, "month", 1, "jpy"))]) == 5000.0  # zero-decimal: yen as is
    assert monthly_revenue([sub("active", (None, 1, "month", 1, "usd"))]) == 0.0  # tiered: no per-unit amount
    assert monthly_revenue([sub("trialing", (2900, 1, "month", 1, "usd"))]) is None
    assert monthly_revenue([]) is None
    both = [sub("active", (2900, 1, "month", 1, "usd")), sub("active", (1200, 2, "year", 1, "usd"))]
    assert monthly_revenue(both) == 31.0


def test_records_carry_mrr_from_the_standins_subscriptions(standin: StripeStandIn, connector: StripeConnector) -> None:
    standin.seed(6)
    records = {r.id: r for page in connector.pull("customers", None) for r in page.records}
    for i in range(6):
        amount = dict(PLANS)[PLANS[i % len(PLANS)][0]] / 100
        expected = amount if status_for(i) in ("active", "past_due") else None
        assert records[customer_id(i)].fields["mrr"] == expected, (i, status_for(i))
