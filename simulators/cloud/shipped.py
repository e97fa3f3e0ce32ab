"""The broker files as they ship in deploy/mosquitto/, with only a test's values put in.

Each substitution must find its text, so the shipped files and the tests cannot drift apart
without a test failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"


def substitute(source: Path, substitutions: Mapping[str, str]) -> str:
    """``source``'s text with each key replaced by its value; ValueError if a key is missing."""
    text = source.read_text()
    for old, new in substitutions.items():
        if old not in text:
            raise ValueError(f"{source} no longer contains {old.strip()!r}")
        text = text.replace(old, new)
    return text
