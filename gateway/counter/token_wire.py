"""A coupon's or an order's row as the wire carries it: its RPC arguments (``coupon.redeem``,
``order.pickup``), its event's data, and the cloud's refusal as its conflict event says it."""

from __future__ import annotations

from pydantic import JsonValue

from core.events import JsonObject
from gateway.counter.rows import PickupRow, Redemption


def _token_fields(row: Redemption | PickupRow) -> JsonObject:
    """What a coupon's and an order's events both say: where, for whom, online or not, and
    the origin (source, client, staff)."""
    return {
        "till": row.till,
        "member_id": row.member_id,
        "offline": row.offline_at is not None,
        "mode": "offline" if row.offline_at is not None else "online",
        **row.origin,
    }


def token_args(row: Redemption | PickupRow, token: str, key: str) -> JsonObject:
    """A token row's RPC arguments (``coupon.redeem``, ``order.pickup``): the scanned text as
    ``token``, the row's idempotency key as ``key``, and the member and offline time if any."""
    row_key = row.redemption_id if isinstance(row, Redemption) else row.pickup_id
    args: JsonObject = {token: row.token, key: row_key, "till": row.till}
    if row.member_id is not None:
        args["member_id"] = row.member_id
    if row.offline_at is not None:
        args["offline_at"] = row.offline_at
    return args


def redeem_args(row: Redemption) -> JsonObject:
    """``coupon.redeem``'s arguments for a row: with its basket, so the cloud judges the
    coupon's conditions as the till did (also when reconciling)."""
    args = token_args(row, "coupon", "redemption_id")
    if row.basket is not None:
        args["basket"] = row.basket
    return args


def conflict_fields(row: Redemption | PickupRow) -> JsonObject:
    """The cloud's refusal of an offline decision, as its conflict event carries it."""
    cloud = row.cloud or {}
    return {
        "reason": str(cloud.get("code", "rejected")),
        "message": str(cloud.get("message", "")),
        "cloud": cloud.get("details"),
    }


def redemption_data(row: Redemption) -> JsonObject:
    """A redemption as its ``coupon.redeemed`` event carries it."""
    data: JsonObject = {
        "redemption_id": row.redemption_id,
        "coupon_id": row.coupon_id,
        "value": str(row.value),
        "currency": row.currency,
        **_token_fields(row),
    }
    if row.title:
        data["title"] = row.title
    if row.offer_id is not None:
        data["offer_id"] = row.offer_id
    if row.store_ledger is not None:
        data["store_ledger"] = row.store_ledger
    if row.offline_at is not None:
        data["offline_at"] = row.offline_at
    if row.discount is not None:
        data["discount"] = row.discount.get("amount")
    if row.basket is not None:
        data["receipt_id"] = row.basket.get("receipt_id")
    return data


def pickup_data(row: PickupRow) -> JsonObject:
    """A pickup as its ``order.picked_up`` event carries it."""
    data: JsonObject = {
        "pickup_id": row.pickup_id,
        "order_id": row.order_id,
        "lines": list[JsonValue](row.lines),
        **_token_fields(row),
    }
    if row.offline_at is not None:
        data["offline_at"] = row.offline_at
    return data
