"""Head office's question: which online activity brought a visit to the store?

For each visit (a ``member.visit`` event: a member's first identification in a store on a
day), what the member did online before it - the offers they claimed and where (kiosk, app,
sticker page) - and what they redeemed that day in that store, by offer. Read from what the
cloud has recorded (events de-duplicated by id, claims), nothing else.
"""

from __future__ import annotations

import json

from simulators.cloud.store import CloudStore, Json


async def attribution(store: CloudStore) -> list[Json]:
    visits = await store.fetch_all(
        "SELECT store_id, gateway_id, ts, data FROM events WHERE kind = 'member.visit' ORDER BY ts"
    )
    out: list[Json] = []
    for store_id, gateway_id, ts, raw in visits:
        visit = json.loads(raw)
        member_id, day = visit["member_id"], visit["day"]
        claims = await store.fetch_all(
            "SELECT c.offer_id, c.at, ch.channel FROM claims c"
            " LEFT JOIN claim_channels ch ON ch.claim_id = c.claim_id"
            " WHERE c.member_id = ? AND substr(c.at, 1, 19) <= substr(?, 1, 19) ORDER BY c.at",
            (member_id, ts),
        )
        redeemed = await store.fetch_all(
            "SELECT data FROM events WHERE kind = 'coupon.redeemed' AND store_id = ?"
            " AND substr(ts, 1, 10) = ? ORDER BY seq",
            (store_id, day),
        )
        offers = [
            d["offer_id"]
            for d in (json.loads(r[0]) for r in redeemed)
            if d.get("member_id") == member_id and d.get("offer_id")
        ]
        out.append(
            {
                "store_id": store_id,
                "gateway_id": gateway_id,
                "member_id": member_id,
                "day": day,
                "till": visit.get("till"),
                "staff": visit.get("staff"),
                "by": visit.get("by"),
                "claimed_before": [
                    {"offer_id": offer, "at": at, "channel": channel}
                    for offer, at, channel in claims
                ],
                "redeemed_offers": offers,
            }
        )
    return out
