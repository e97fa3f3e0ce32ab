"""Each kind of counter operation: the cloud's RPC for it, the event it is recorded with, the
name of its idempotency key and, for spending the cloud may find short, the event that says
so; and what those events carry."""

from __future__ import annotations

import hashlib

from core.events import JsonObject
from gateway.counter.rows import Operation, OpKind

METHOD: dict[OpKind, str] = {
    "accrual": "points.accrue",
    "checkin": "appointment.checkin",
    "payment": "balance.pay",
    "refund": "balance.refund",
    "topup": "balance.topup",
    "points_redemption": "points.redeem",
    "reversal": "points.reverse",
    "package_use": "package.consume",
    "join": "member.join",
}
"""The cloud's RPC for each kind of operation."""
ACCEPTED: dict[OpKind, str] = {
    "accrual": "points.accrued",
    "checkin": "appointment.checked_in",
    "payment": "balance.paid",
    "refund": "balance.refunded",
    "topup": "balance.topped_up",
    "points_redemption": "points.redeemed",
    "reversal": "points.reversed",
    "package_use": "package.used",
    "join": "member.joined",
}
"""The event each kind of operation is recorded with."""
KEY: dict[OpKind, str] = {
    "accrual": "accrual_id",
    "checkin": "checkin_id",
    "payment": "payment_id",
    "refund": "refund_id",
    "topup": "topup_id",
    "points_redemption": "redeem_id",
    "reversal": "reversal_id",
    "package_use": "use_id",
    "join": "join_id",
}
"""The idempotency key's name, in the request and the events."""
SHORTFALL: dict[OpKind, str] = {
    "payment": "balance.conflict",
    "points_redemption": "points.conflict",
    "package_use": "package.conflict",
    "checkin": "package.conflict",
}
"""Spending accepted offline that the cloud may find short, and the event that says so (a
check-in: the package session it used)."""


def phone_hash(phone: str) -> str:
    """What events say of a phone number: the cloud keeps the number, nobody else needs it."""
    return hashlib.sha256(f"storegw-phone:{phone}".encode()).hexdigest()


def event_args(op: Operation) -> JsonObject:
    """An operation's arguments as its event carries them (a join: the phone's hash)."""
    if op.kind != "join":
        return op.args
    out = {k: v for k, v in op.args.items() if k != "phone"}
    out["phone_hash"] = phone_hash(str(op.args.get("phone", "")))
    return out


def shortfall_fields(op: Operation) -> JsonObject:
    """What the cloud's answer says of a shortfall (empty: none); a check-in's is in the
    package session it used."""
    result = op.result or {}
    if op.kind == "checkin":
        package = result.get("package")
        result = package if isinstance(package, dict) else {}
    if result.get("shortfall") is None:
        return {}
    keep = ("shortfall", "balance", "points", "left", "package_id")
    return {k: result[k] for k in keep if k in result}
