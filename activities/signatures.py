"""Webhook signatures (HMAC-SHA256, timestamped), one scheme both ways: the ingest API
verifies the webhooks sources send it (``service/api.py``), and the webhook channel
signs what Equator sends providers (``activities/delivery/webhook.py``), so a provider
checks ours exactly as we check theirs.

The signed text is ``f"{timestamp}.{raw body}"`` under a shared secret, so a captured
request cannot be replayed once the timestamp falls outside the tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

SIGNATURE_HEADER = "Equator-Signature"


@dataclass(frozen=True)
class SignatureError(Exception):
    reason: str


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value a sender sends: ``t=<unix seconds>,v1=<hex HMAC-SHA256>``."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify_signature(
    header: str | None, body: bytes, secrets_: Iterable[str], now: float, tolerance: float
) -> None:
    """Raise ``SignatureError`` unless one ``v1`` matches one secret and ``t`` is recent."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        raise SignatureError("signature has no valid t=<unix seconds>") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError("signature timestamp is outside the tolerance (replay?)")
    expected = [_mac(secret, timestamp, body) for secret in secrets_]
    presented = [value.encode("utf-8", "replace") for value in fields.get("v1", [])]
    if not any(hmac.compare_digest(p, e.encode()) for p in presented for e in expected):
        raise SignatureError("signature does not match")


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
