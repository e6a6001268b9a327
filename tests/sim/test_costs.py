"""CostLedger: billed duration rounding, GB-seconds, request and store fees."""

import pytest

from dag import ResourceConfig
from sim import CostLedger, Platform


def test_hand_computed_bill():
    """1024 MB busy 1000.4 ms bills 1001 ms = 1.001 GB-s, plus one request fee."""
    ledger = CostLedger(Platform.preset("aws-lambda"))
    assert ledger.invocation(ResourceConfig(1024), 1000.4) == 1001.0
    bill = ledger.breakdown()
    assert bill["gb_s"] == pytest.approx(1.001)
    assert bill["compute_usd"] == pytest.approx(1.001 * 0.0000166667)
    assert bill["requests_usd"] == pytest.approx(0.0000002)
    assert bill["n_requests"] == 1
    assert bill["total_usd"] == pytest.approx(1.001 * 0.0000166667 + 0.0000002)


def test_exact_multiple_not_rounded_up():
    """A duration that is a whole number of ms (up to float noise) bills exactly that."""
    ledger = CostLedger(Platform())
    assert ledger.billed_duration_ms(0.1 + 0.2) == 1.0
    assert ledger.billed_duration_ms(3.0) == 3.0
    assert ledger.billed_duration_ms(0.0) == 0.0


def test_coarser_granularity_rounds_up():
    """With 100 ms granularity, 101 ms bills 200 ms."""
    ledger = CostLedger(Platform(billing_granularity_ms=100.0))
    assert ledger.invocation(ResourceConfig(2048), 101.0) == 200.0
    assert ledger.breakdown()["gb_s"] == pytest.approx(2 * 0.2)


def test_store_fees():
    """Store bytes bill per GB (2**30 bytes) and commands per op."""
    platform = Platform(store_price_per_gb_transferred=0.01, store_price_per_op=1e-6)
    ledger = CostLedger(platform)
    ledger.store_transfer(2**30)
    ledger.store_transfer(2**29)
    ledger.store_op()
    ledger.store_op(n=9)
    bill = ledger.breakdown()
    assert bill["store_usd"] == pytest.approx(0.015 + 10e-6)
    assert (bill["store_bytes"], bill["n_store_ops"]) == (3 * 2**29, 10)
    assert bill["total_usd"] == pytest.approx(bill["store_usd"])


@pytest.mark.parametrize("duration_ms", [-1.0, float("nan"), float("inf")])
def test_bad_duration_rejected(duration_ms):
    """A negative or non-finite duration raises ValueError naming the config."""
    with pytest.raises(ValueError, match="1024MB"):
        CostLedger(Platform()).invocation(ResourceConfig(1024), duration_ms)
