"""The accrual id derived from a receipt: stable in a store, distinct across stores (the
cloud's accrual keys are global, so a shared key would hand one store's answer to another)."""

from __future__ import annotations

from gateway.counter.operations import receipt_accrual_id


def test_one_receipt_is_one_key_in_its_store_and_another_elsewhere() -> None:
    assert receipt_accrual_id("S001", "R-1") == receipt_accrual_id("S001", "R-1")
    assert receipt_accrual_id("S001", "R-1") != receipt_accrual_id("S002", "R-1")
    assert receipt_accrual_id("S001", "R-1") != receipt_accrual_id("S001", "R-2")
    assert len(receipt_accrual_id("S" * 64, "R" * 64)) <= 64  # fits the id pattern
