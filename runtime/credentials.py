"""Who is calling and what they may do: API keys (bearer) with their source's scopes, and
the secrets its webhooks are signed with (``activities/signatures.py``), as pure
functions.

Keys are random, so one SHA-256 is enough to store them safely (a slow password hash
buys nothing against 256 bits of entropy); only the hash is ever configured.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from workflows.events import Label

KEY_PREFIX = "eqk_"
HASH_PREFIX = "sha256:"


class Scope(StrEnum):
    """What a source's API keys may do; each keyed route requires one."""

    EVENTS_WRITE = "events:write"
    JOURNEYS_READ = "journeys:read"
    CUSTOMERS_ERASE = "customers:erase"
    REPORTS_READ = "reports:read"
    # Decrypting payloads through the codec server (the Temporal UI, `temporal --codec-auth`).
    PAYLOADS_READ = "payloads:read"
    # Steering journeys (pause, skip a step, …); the CLI does that through Temporal today.
    OPERATE = "operate"


# The rights of a source configured before scopes existed: what every key could do then.
LEGACY_SCOPES = frozenset({Scope.EVENTS_WRITE, Scope.JOURNEYS_READ, Scope.CUSTOMERS_ERASE})


class Source(BaseModel):
    """An event source: the keys it calls with, what they may do, and, for webhooks, the
    secrets it signs with. Several keys or secrets let one be rotated without downtime."""

    model_config = ConfigDict(frozen=True)

    name: Label
    key_hashes: tuple[str, ...] = ()
    # None: configured before scopes existed; deprecated, it keeps ``LEGACY_SCOPES``.
    scopes: frozenset[Scope] | None = None
    webhook_secrets: tuple[SecretStr, ...] = ()

    @property
    def granted(self) -> frozenset[Scope]:
        return LEGACY_SCOPES if self.scopes is None else self.scopes

    @field_validator("key_hashes")
    @classmethod
    def _hashes(cls, hashes: tuple[str, ...]) -> tuple[str, ...]:
        for value in hashes:
            if not re.fullmatch(f"{HASH_PREFIX}[0-9a-f]{{64}}", value):
                raise ValueError(f"a key hash looks like {HASH_PREFIX}<64 hex digits>")
        return hashes


def source_for_key(sources: Iterable[Source], key: str) -> Source | None:
    presented = hash_key(key).encode()
    found = None
    for source in sources:
        # Every hash is compared, in constant time: the timing tells nothing.
        for known in source.key_hashes:
            if hmac.compare_digest(presented, known.encode()):
                found = source
    return found


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()
