"""The simulated cloud's tables, one per subject; every statement is idempotent on restart."""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY, private BLOB NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
    member_id TEXT PRIMARY KEY, name TEXT NOT NULL, tier TEXT NOT NULL,
    points INTEGER NOT NULL, balance TEXT NOT NULL, currency TEXT NOT NULL, tags TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cards (
    uid TEXT PRIMARY KEY, member_id TEXT NOT NULL, kind TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS coupons (
    coupon_id TEXT PRIMARY KEY, member_id TEXT, value TEXT NOT NULL, currency TEXT NOT NULL,
    title TEXT NOT NULL, expires TEXT NOT NULL, not_before TEXT, stores TEXT NOT NULL,
    token TEXT NOT NULL,
    used_at TEXT, used_store TEXT, used_gateway TEXT, used_till TEXT, used_by TEXT
);
CREATE TABLE IF NOT EXISTS redemptions (
    redemption_id TEXT PRIMARY KEY, coupon_id TEXT NOT NULL, store_id TEXT NOT NULL,
    gateway_id TEXT NOT NULL, till TEXT, member_id TEXT, at TEXT NOT NULL, offline_at TEXT,
    reply TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY, member_id TEXT NOT NULL, stores TEXT NOT NULL,
    lines TEXT NOT NULL, expires TEXT NOT NULL, token TEXT NOT NULL, status TEXT NOT NULL,
    collected_at TEXT, collected_store TEXT, collected_gateway TEXT, collected_till TEXT,
    pickup_id TEXT
);
CREATE INDEX IF NOT EXISTS orders_by_member ON orders (member_id, status);
CREATE TABLE IF NOT EXISTS pickups (
    pickup_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, store_id TEXT NOT NULL,
    gateway_id TEXT NOT NULL, till TEXT, member_id TEXT, at TEXT NOT NULL, offline_at TEXT,
    reply TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS receipt_coupons (
    redemption_id TEXT PRIMARY KEY, store_id TEXT NOT NULL, receipt_id TEXT NOT NULL,
    grp TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS receipt_coupons_by_receipt ON receipt_coupons (store_id, receipt_id);
CREATE TABLE IF NOT EXISTS accruals (
    accrual_id TEXT PRIMARY KEY, member_id TEXT NOT NULL, amount TEXT NOT NULL,
    currency TEXT NOT NULL, receipt_id TEXT, items TEXT NOT NULL, store_id TEXT NOT NULL,
    gateway_id TEXT NOT NULL, at TEXT NOT NULL, reply TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS accruals_by_receipt ON accruals (store_id, receipt_id);
CREATE TABLE IF NOT EXISTS appointments (
    appointment_id TEXT PRIMARY KEY, member_id TEXT NOT NULL, store_id TEXT NOT NULL,
    starts_at TEXT NOT NULL, service TEXT NOT NULL, status TEXT NOT NULL,
    checkin_id TEXT, checked_in_at TEXT
);
CREATE TABLE IF NOT EXISTS checkins (
    checkin_id TEXT PRIMARY KEY, appointment_id TEXT NOT NULL, at TEXT NOT NULL,
    reply TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY, name TEXT NOT NULL, price TEXT NOT NULL, currency TEXT NOT NULL,
    member_price TEXT
);
CREATE TABLE IF NOT EXISTS promotions (
    promotion_id TEXT PRIMARY KEY, sku TEXT NOT NULL, title TEXT NOT NULL,
    promo_price TEXT NOT NULL, starts_at TEXT NOT NULL, ends_at TEXT NOT NULL,
    stores TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS credentials (
    credential_id TEXT PRIMARY KEY, member_id TEXT NOT NULL, issued_at TEXT NOT NULL,
    expires TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    store_id TEXT NOT NULL, gateway_id TEXT NOT NULL, event_id TEXT NOT NULL,
    seq INTEGER NOT NULL, kind TEXT NOT NULL, device_id TEXT, ts TEXT, replayed INTEGER NOT NULL,
    received_at TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (store_id, gateway_id, event_id)
);
CREATE INDEX IF NOT EXISTS events_seq ON events(store_id, gateway_id, seq);
CREATE TABLE IF NOT EXISTS payments (
    payment_id TEXT PRIMARY KEY, kind TEXT NOT NULL, member_id TEXT NOT NULL,
    amount TEXT NOT NULL, currency TEXT NOT NULL, ref TEXT, receipt_id TEXT, method TEXT,
    store_id TEXT NOT NULL, gateway_id TEXT NOT NULL, till TEXT, at TEXT NOT NULL,
    offline_at TEXT, credential_id TEXT, reply TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_by_ref ON payments (ref);
CREATE TABLE IF NOT EXISTS wallet_versions (member_id TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS wallet_credentials (
    credential_id TEXT PRIMARY KEY, member_id TEXT NOT NULL, balance TEXT NOT NULL,
    allowance TEXT NOT NULL, version INTEGER NOT NULL, issued_at TEXT NOT NULL,
    expires TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS points_moves (
    move_id TEXT PRIMARY KEY, kind TEXT NOT NULL, member_id TEXT NOT NULL,
    points INTEGER NOT NULL, amount TEXT, ref TEXT, receipt_id TEXT, store_id TEXT NOT NULL,
    gateway_id TEXT NOT NULL, till TEXT, at TEXT NOT NULL, offline_at TEXT,
    credential_id TEXT, reply TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS points_moves_by_ref ON points_moves (ref);
CREATE TABLE IF NOT EXISTS packages (
    package_id TEXT PRIMARY KEY, member_id TEXT NOT NULL, service TEXT NOT NULL,
    total INTEGER NOT NULL, used INTEGER NOT NULL, expires TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS package_uses (
    use_id TEXT PRIMARY KEY, package_id TEXT NOT NULL, member_id TEXT NOT NULL,
    sessions INTEGER NOT NULL, appointment_id TEXT, store_id TEXT NOT NULL,
    gateway_id TEXT NOT NULL, till TEXT, at TEXT NOT NULL, offline_at TEXT,
    credential_id TEXT, reply TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS appointment_packages (
    appointment_id TEXT PRIMARY KEY, package_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS appointment_bookings (
    appointment_id TEXT PRIMARY KEY, channel TEXT NOT NULL, campaign_id TEXT,
    booked_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS claim_channels (claim_id TEXT PRIMARY KEY, channel TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS joins (
    join_id TEXT PRIMARY KEY, member_id TEXT NOT NULL, phone TEXT NOT NULL,
    marketing INTEGER NOT NULL, store_id TEXT NOT NULL, gateway_id TEXT NOT NULL,
    till TEXT, staff TEXT, channel TEXT, placement TEXT, provisional_id TEXT,
    at TEXT NOT NULL, offline_at TEXT, reply TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS joins_by_provisional ON joins (provisional_id);
CREATE TABLE IF NOT EXISTS member_phones (phone TEXT PRIMARY KEY, member_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sticker_keys (
    store_id TEXT NOT NULL, key_id TEXT NOT NULL, secret TEXT NOT NULL, origin TEXT NOT NULL,
    created_at TEXT NOT NULL, retired_at TEXT, PRIMARY KEY (store_id, key_id)
);
CREATE TABLE IF NOT EXISTS sticker_counters (uid TEXT PRIMARY KEY, counter INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sticker_taps (
    tap_id TEXT PRIMARY KEY, store_id TEXT NOT NULL, placement TEXT NOT NULL, staff TEXT,
    key_id TEXT, uid TEXT, counter INTEGER, kind TEXT NOT NULL, outcome TEXT NOT NULL,
    at TEXT NOT NULL, join_id TEXT
);
"""
