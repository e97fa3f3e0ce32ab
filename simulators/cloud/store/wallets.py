"""Stored value: payments, refunds and top-ups, and the signed wallet credential that lets a
store spend a bounded part of a member's balance while it is offline.

Every movement is keyed by the gateway's idempotency key and stores its answer. A payment made
offline (``offline_at``) is applied when it arrives even if the balance no longer covers it
(the goods left the store): the answer names the ``shortfall``, which the gateway reports as a
``balance.conflict``.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Literal

from core.ids import new_id
from gateway.wire.tokens import PackageClaim, WalletCredential, sign_wallet
from simulators.cloud import seed
from simulators.cloud.store.base import Json, Refusal, RefusalCode, StoreBase, iso, made, money
from simulators.cloud.store.members import MemberTables

PaymentKind = Literal["pay", "refund", "topup"]


class WalletTables(MemberTables, StoreBase):
    async def wallet_version(self, member_id: str) -> int:
        row = await self.fetch_one(
            "SELECT version FROM wallet_versions WHERE member_id = ?", (member_id,)
        )
        return 0 if row is None else int(row[0])

    async def _bump_wallet(self, member_id: str) -> None:
        await self.db.execute(
            "INSERT INTO wallet_versions VALUES (?, 1) "
            "ON CONFLICT(member_id) DO UPDATE SET version = version + 1",
            (member_id,),
        )

    async def wallet_credential(self, member: Json, *, now: datetime) -> str:
        """A fresh ``SGW1:`` credential for the member's stored value and points, recorded so
        an offline payment against it can be traced back."""
        credential = WalletCredential(
            credential_id=f"wal-{new_id()}",
            member_id=member["member_id"],
            currency=member["currency"],
            balance=Decimal(member["balance"]),
            allowance=seed.OFFLINE_ALLOWANCE.get(member["tier"], Decimal(0)),
            points=max(int(member["points"]), 0),
            points_allowance=seed.POINTS_OFFLINE,
            points_value=seed.POINTS_VALUE,
            version=await self.wallet_version(member["member_id"]),
            packages=tuple(
                PackageClaim(
                    package_id=p["package_id"], service=p["service"], left=max(p["left"], 0)
                )
                for p in member.get("packages", ())
            ),
            issued_at=now,
            expires=now + seed.WALLET_TTL,
        )
        await self._write(
            "INSERT INTO wallet_credentials VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                credential.credential_id,
                credential.member_id,
                str(credential.balance),
                str(credential.allowance),
                credential.version,
                iso(credential.issued_at),
                iso(credential.expires),
            ),
        )
        return sign_wallet(credential, self.signing_key)

    async def _movement(self, payment_id: str, kind: PaymentKind, fingerprint: Json) -> Json | None:
        """The stored answer to this key; another movement under it is ``bad_args``."""
        row = await self.fetch_one(
            "SELECT kind, member_id, amount, ref, reply FROM payments WHERE payment_id = ?",
            (payment_id,),
        )
        if row is None:
            return None
        known = {"kind": row[0], "member_id": row[1], "amount": Decimal(row[2]), "ref": row[3]}
        if any(known[k] != v for k, v in {"kind": kind, **fingerprint}.items()):
            raise Refusal(RefusalCode.BAD_ARGS, f"{kind} id was used for another {kind}")
        return dict(json.loads(row[4]))

    async def _record_movement(
        self,
        payment_id: str,
        kind: PaymentKind,
        *,
        member_id: str,
        amount: Decimal,
        currency: str,
        new_balance: Decimal,
        reply: Json,
        where: tuple[str, str, str | None],
        ref: str | None = None,
        receipt_id: str | None = None,
        method: str | None = None,
        offline_at: datetime | None = None,
        credential_id: str | None = None,
        now: datetime,
    ) -> Json:
        await self.db.execute(
            "UPDATE members SET balance = ? WHERE member_id = ?", (money(new_balance), member_id)
        )
        await self._bump_wallet(member_id)
        await self.db.execute(
            "INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                payment_id,
                kind,
                member_id,
                str(amount),
                currency,
                ref,
                receipt_id,
                method,
                *made(where, now, offline_at, credential_id, reply),
            ),
        )
        await self.db.commit()
        return reply

    async def pay(
        self,
        *,
        payment_id: str,
        member_id: str,
        amount: Decimal,
        currency: str,
        receipt_id: str,
        where: tuple[str, str, str | None],
        offline_at: datetime | None,
        credential_id: str | None,
        now: datetime,
    ) -> Json:
        """Debit the member's stored value. Online a balance that does not cover it is
        ``insufficient_funds``; a payment made offline is applied anyway, with its shortfall."""
        stored = await self._movement(
            payment_id, "pay", {"member_id": member_id, "amount": amount, "ref": None}
        )
        if stored is not None:
            return stored
        member = await self.member_in(member_id, currency)
        balance = Decimal(member["balance"])
        if offline_at is None and balance < amount:
            raise Refusal(
                RefusalCode.INSUFFICIENT_FUNDS,
                "the stored value does not cover the payment",
                {"balance": money(balance), "currency": currency},
            )
        if offline_at is not None:
            await self._check_credential(credential_id, member_id)
        after = balance - amount
        data: Json = {
            "payment_id": payment_id,
            "amount": money(amount),
            "currency": currency,
            "balance": money(after),
        }
        if after < 0:
            data["shortfall"] = money(min(amount, -after))
        return await self._record_movement(
            payment_id,
            "pay",
            member_id=member_id,
            amount=amount,
            currency=currency,
            new_balance=after,
            reply={"ok": True, "data": data},
            where=where,
            receipt_id=receipt_id,
            offline_at=offline_at,
            credential_id=credential_id,
            now=now,
        )

    async def _check_credential(self, credential_id: str | None, member_id: str) -> None:
        """An offline payment rests on a credential this cloud issued to this member."""
        row = None
        if credential_id is not None:
            row = await self.fetch_one(
                "SELECT member_id FROM wallet_credentials WHERE credential_id = ?",
                (credential_id,),
            )
        if row is None or row[0] != member_id:
            raise Refusal(
                RefusalCode.NOT_FOUND,
                "an offline payment must name a wallet credential issued to the member",
            )

    async def refund(
        self,
        *,
        refund_id: str,
        payment_id: str,
        amount: Decimal,
        where: tuple[str, str, str | None],
        offline_at: datetime | None,
        now: datetime,
    ) -> Json:
        """Credit back at most what the payment paid, less what was refunded of it before."""
        paid = await self.fetch_one(
            "SELECT member_id, amount, currency FROM payments "
            "WHERE payment_id = ? AND kind = 'pay'",
            (payment_id,),
        )
        if paid is None:
            raise Refusal(RefusalCode.NOT_FOUND, "no such payment")
        member_id, paid_amount, currency = str(paid[0]), Decimal(paid[1]), str(paid[2])
        stored = await self._movement(
            refund_id, "refund", {"member_id": member_id, "amount": amount, "ref": payment_id}
        )
        if stored is not None:
            return stored
        earlier = await self.fetch_all(
            "SELECT amount FROM payments WHERE kind = 'refund' AND ref = ?", (payment_id,)
        )
        refundable = paid_amount - sum((Decimal(r[0]) for r in earlier), Decimal(0))
        if amount > refundable:
            raise Refusal(
                RefusalCode.OVER_REFUND,
                "a refund is at most what the payment paid, less earlier refunds",
                {"refundable": money(refundable), "currency": currency},
            )
        member = await self.member_in(member_id, currency)
        after = Decimal(member["balance"]) + amount
        data: Json = {
            "refund_id": refund_id,
            "payment_id": payment_id,
            "member_id": member_id,
            "amount": money(amount),
            "currency": currency,
            "balance": money(after),
            "refundable": money(refundable - amount),
        }
        return await self._record_movement(
            refund_id,
            "refund",
            member_id=member_id,
            amount=amount,
            currency=currency,
            new_balance=after,
            reply={"ok": True, "data": data},
            where=where,
            ref=payment_id,
            offline_at=offline_at,
            now=now,
        )

    async def topup(
        self,
        *,
        topup_id: str,
        member_id: str,
        amount: Decimal,
        currency: str,
        method: str,
        receipt_id: str,
        where: tuple[str, str, str | None],
        offline_at: datetime | None,
        now: datetime,
    ) -> Json:
        stored = await self._movement(
            topup_id, "topup", {"member_id": member_id, "amount": amount, "ref": None}
        )
        if stored is not None:
            return stored
        member = await self.member_in(member_id, currency)
        after = Decimal(member["balance"]) + amount
        data: Json = {
            "topup_id": topup_id,
            "amount": money(amount),
            "currency": currency,
            "balance": money(after),
        }
        return await self._record_movement(
            topup_id,
            "topup",
            member_id=member_id,
            amount=amount,
            currency=currency,
            new_balance=after,
            reply={"ok": True, "data": data},
            where=where,
            receipt_id=receipt_id,
            method=method,
            offline_at=offline_at,
            now=now,
        )
