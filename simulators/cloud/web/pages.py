"""The landing's HTML: small, server-rendered, every value escaped."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem} .note{color:#666;font-size:.9rem} .refused{color:#a00}
label{display:block;margin:.8rem 0} input[type=tel]{font-size:1.1rem;width:100%;padding:.4rem}
button{font-size:1.1rem;padding:.5rem 1.2rem;margin-top:.8rem}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def join_page(store_id: str, placement: str, tap_id: str, error: str = "") -> str:
    problem = f"<p class='refused' id='problem'>{escape(error)}</p>" if error else ""
    action = f"/t/{escape(store_id)}/{escape(placement)}/join"
    return _page(
        "Join",
        f"<h1 id='title'>Join our members at store {escape(store_id)}</h1>"
        "<p>Become a member: points on every purchase, member prices and coupons.</p>"
        f"{problem}"
        f"<form method='post' action='{action}' id='join'>"
        f"<input type='hidden' name='tap' value='{escape(tap_id)}'>"
        "<label>Mobile number (international form, e.g. +4915112345678)"
        "<input type='tel' name='phone' id='phone' required pattern='\\+[1-9][0-9]{6,14}'"
        " autocomplete='tel'></label>"
        "<label><input type='checkbox' name='consent' id='consent' value='yes' required>"
        " I agree to become a member and to the processing of my number for it.</label>"
        "<label><input type='checkbox' name='marketing' id='marketing' value='yes'>"
        " Send me offers (optional).</label>"
        "<button type='submit' id='submit'>Join</button></form>",
    )


def member_page(member: dict[str, Any], placement: str, *, joined_now: bool) -> str:
    hello = "Welcome, you are a member now" if joined_now else "Welcome back"
    return _page(
        "Member",
        f"<h1 id='title'>{hello}</h1>"
        f"<p id='member'>Member <b id='member-id'>{escape(str(member['member_id']))}</b>, "
        f"{escape(str(member['name']))}</p>"
        f"<p>Tier {escape(str(member['tier']))} &middot; "
        f"<span id='points'>{int(member['points'])}</span> points</p>"
        f"<p class='note'>Your tap at {escape(placement)} was recorded.</p>",
    )


def refused_page(title: str, reason: str) -> str:
    return _page(
        title,
        f"<h1 id='title' class='refused'>{escape(title)}</h1>"
        f"<p id='reason'>{escape(reason)}</p>"
        "<p class='note'>Tap the sticker itself again with your phone; a link copied from "
        "an earlier tap does not work.</p>",
    )
