"""The cloud and phone identities the fuzz targets sign with, and the clock they check at.

Fixed keys and a fixed ``NOW`` keep every seed the same bytes from run to run (a derandomised
CI run is then reproducible); the gateway under fuzz pins ``KEYS`` and runs at ``NOW``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.wire.tokens import Coupon, KeySet, SigningKey, issue_member_credential

NOW = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
CLOUD = SigningKey.from_private_bytes("cloud-2026", bytes(range(32)))
PHONE = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
KEYS = KeySet.of(CLOUD)
JWKS: Any = KEYS.to_jwks()
COUPON = Coupon(
    coupon_id="C-100",
    value=Decimal("5.00"),
    currency="EUR",
    expires=NOW + timedelta(days=7),
    stores=("S001", "S002"),
    member_id="M1001",
    title="5 EUR off",
)
CREDENTIAL = issue_member_credential(
    "M1001", PHONE.public_key(), CLOUD, expires=NOW + timedelta(days=30), credential_id="cred-1"
)
