"""What the demo prints: events as the cloud receives them, the till's API answers, the
summary."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rich.console import Console

from simulators.cloud import CloudService

console = Console(highlight=False, soft_wrap=True)


def say(text: str, style: str = "bold cyan") -> None:
    console.print(f"[{style}]== {text}[/]")


def _scan(d: dict[str, Any]) -> str:
    code = str(d.get("code", "")).replace("\x1d", "<GS>")
    code = code if len(code) <= 48 else code[:45] + "..."
    return f"{code}  [dim]{d.get('symbology') or ''}[/]"


def _nfc(d: dict[str, Any]) -> str:
    records = d.get("ndef") or []
    uri = records[0].get("uri", "") if records else ""
    return f"{d.get('product') or d.get('type')} uid {d.get('uid')} {uri}"


def _lines(d: dict[str, Any]) -> str:
    """An order's lines as a till would read them out: ``3x Stabilo pen, 1x Notebook A5``."""
    lines = d.get("lines")
    if not isinstance(lines, list):
        return ""
    return ", ".join(
        f"{line.get('qty')}x {line.get('name') or line.get('sku')}"
        for line in lines
        if isinstance(line, dict)
    )


def _mode(d: dict[str, Any]) -> str:
    return f"[dim]({d.get('mode')})[/]" if d.get("mode") else ""


_SUMMARIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "scan": _scan,
    "nfc": _nfc,
    "error": lambda d: f"[red]{d.get('reason')}[/]: {d.get('message')}",
    "card": lambda d: f"uid {d.get('uid')} member_no {d.get('member_no', '-')}",
    "member.identified": lambda d: f"{d.get('member_id')} by {d.get('by')} {_mode(d)}",
    "coupon.redeemed": lambda d: (
        f"{d.get('coupon_id')} {d.get('value')} {d.get('currency')}"
        f"{' offline' if d.get('offline') else ''} {_mode(d)}"
    ),
    "order.picked_up": lambda d: f"{d.get('order_id')} {_lines(d)} {_mode(d)}",
    "pickup.conflict": lambda d: f"[red]{d.get('order_id')}: {d.get('reason')}[/]",
    "points.accrued": lambda d: f"{d.get('member_id')} {d.get('amount')} {d.get('currency')}",
    "redemption.conflict": lambda d: f"[red]{d.get('coupon_id')}: {d.get('reason')}[/]",
    "balance.paid": lambda d: (
        f"{d.get('payment_id')} {d.get('amount')} {d.get('currency')}"
        f"{' offline' if d.get('offline_at') else ''}"
    ),
    "balance.conflict": lambda d: (
        f"[red]{d.get('payment_id')}: short {d.get('shortfall')} {d.get('currency')}[/]"
    ),
    "counter.refused": lambda d: f"[red]{d.get('operation')}: {d.get('reason')}[/]",
    "price.sync": lambda d: (
        f"{d.get('reason')}: updated {len(d.get('updated') or [])}, "
        f"failed {len(d.get('failed') or [])}"
    ),
}


def _summarise(kind: str, data: dict[str, Any]) -> str:
    short = _SUMMARIES.get(kind)
    if short is not None:
        return short(data)
    text = json.dumps(data, ensure_ascii=False)
    return text if len(text) <= 70 else text[:67] + "..."


def show_event(event: dict[str, Any], duplicate: bool) -> None:
    tag = " [yellow]replayed[/]" if event.get("replayed") else ""
    dup = " [red]duplicate[/]" if duplicate else ""
    console.print(
        f"  [green]cloud <-[/] #{event['seq']:<4} {event['device_id']:<15} "
        f"[bold]{event['kind']:<14}[/] {_summarise(event['kind'], event.get('data') or {})}"
        f"{tag}{dup}",
    )


def answer(what: str, status: int, doc: dict[str, Any], *, till: str = "till-1") -> None:
    mode = doc.get("mode") or (doc.get("error") or {}).get("mode") or "-"
    style = "green" if status < 400 else "red"
    detail = doc.get("error", {}).get("code") if status >= 400 else _brief(doc)
    console.print(f"  [blue]{till} API[/] {what}: [{style}]{status}[/] mode={mode} {detail}")


def _brief(doc: dict[str, Any]) -> str:
    keys = (
        "member_id",
        "coupon_id",
        "order_id",
        "value",
        "points_added",
        "points",
        "payment_id",
        "amount",
        "discount",
        "points_redeemed",
        "points_removed",
        "use_id",
        "left",
        "balance",
        "projected",
        "spendable_offline",
        "status",
        "cached",
    )
    found: dict[str, Any] = {k: doc[k] for k in keys if doc.get(k) is not None}
    if "lines" in doc:
        found["lines"] = _lines(doc)
    member = doc.get("member")
    if isinstance(member, dict):
        found.update({k: member[k] for k in ("member_id", "name", "points") if k in member})
    return json.dumps(found, ensure_ascii=False, default=str)


def summary(cloud: CloudService) -> None:
    report = cloud.report()
    gaps = sum(len(g) for g in report.get("gaps", {}).values())
    say(
        f"cloud received {report.get('unique', 0)} unique events "
        f"({report.get('duplicates', 0)} duplicates ignored, {report.get('replayed', 0)} "
        f"replayed), seq gaps: {gaps}",
        "bold green",
    )
