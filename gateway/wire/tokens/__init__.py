"""Signed coupons, member codes, pickup codes and wallet credentials, shared by the gateway
and the (simulated) cloud.

Pure functions, no I/O: the gateway verifies at the till even when the cloud is unreachable,
so everything it needs is in the scanned text plus the cloud's public keys (:mod:`.keys`).
All kinds share one format (:mod:`.jws`): :mod:`.coupons`, :mod:`.members` and
:mod:`.pickups` (order pickup codes). Every failure is a :class:`TokenError` with a stable
``code``.
"""

from __future__ import annotations

from gateway.wire.tokens.conditions import (
    Basket,
    BasketLine,
    ConditionCode,
    ConditionError,
    Conditions,
    Discount,
    check_per_receipt,
    evaluate,
)
from gateway.wire.tokens.coupons import Coupon, sign_coupon, verify_coupon
from gateway.wire.tokens.errors import ClaimTokenError, TokenError, TokenErrorCode
from gateway.wire.tokens.jws import (
    COUPON_PREFIX,
    MEMBER_PREFIX,
    PICKUP_PREFIX,
    WALLET_PREFIX,
    scan_kind,
)
from gateway.wire.tokens.keys import KeySet, SigningKey, thumbprint
from gateway.wire.tokens.members import (
    MemberCode,
    issue_member_credential,
    make_member_qr,
    verify_member_qr,
)
from gateway.wire.tokens.pickups import Pickup, PickupLine, sign_pickup, verify_pickup
from gateway.wire.tokens.wallets import (
    PackageClaim,
    WalletCredential,
    sign_wallet,
    verify_wallet,
)

__all__ = [
    "COUPON_PREFIX",
    "MEMBER_PREFIX",
    "PICKUP_PREFIX",
    "WALLET_PREFIX",
    "Basket",
    "BasketLine",
    "ClaimTokenError",
    "ConditionCode",
    "ConditionError",
    "Conditions",
    "Coupon",
    "Discount",
    "KeySet",
    "MemberCode",
    "PackageClaim",
    "Pickup",
    "PickupLine",
    "SigningKey",
    "TokenError",
    "TokenErrorCode",
    "WalletCredential",
    "check_per_receipt",
    "evaluate",
    "issue_member_credential",
    "make_member_qr",
    "scan_kind",
    "sign_coupon",
    "sign_pickup",
    "sign_wallet",
    "thumbprint",
    "verify_coupon",
    "verify_member_qr",
    "verify_pickup",
    "verify_wallet",
]
