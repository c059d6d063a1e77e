"""API keys and webhook signatures, without a server."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from runtime.credentials import (
    SignatureError,
    Source,
    hash_key,
    new_key,
    sign,
    source_for_key,
    verify_signature,
)

BODY = b'{"events": []}'
NOW = 1_800_000_000


def test_a_key_finds_its_source_by_hash_and_rotation_keeps_both_keys() -> None:
    old, new, other = new_key(), new_key(), new_key()
    sources = [
        Source(name="pos", key_hashes=(hash_key(old), hash_key(new))),
        Source(name="app", key_hashes=(hash_key(other),)),
    ]
    assert [source_for_key(sources, k).name for k in (old, new, other)] == ["pos", "pos", "app"]  # type: ignore[union-attr]
    assert source_for_key(sources, "eqk_unknown") is None
    assert source_for_key(sources, "ünïcode") is None


def test_keys_are_configured_only_as_hashes() -> None:
    with pytest.raises(ValidationError, match="sha256:<64 hex digits>"):
        Source(name="pos", key_hashes=("eqk_plain-text-key",))


def test_a_fresh_signature_verifies_under_any_current_secret() -> None:
    header = sign("new-secret", NOW, BODY)
    verify_signature(header, BODY, ["old-secret", "new-secret"], NOW + 10, tolerance=300)


@pytest.mark.parametrize(
    ("header", "body", "now", "reason"),
    [
        (None, BODY, NOW, "missing Equator-Signature"),
        ("v1=abc", BODY, NOW, "no valid t="),
        ("t=soon,v1=abc", BODY, NOW, "no valid t="),
        (sign("s", NOW, BODY), BODY, NOW + 301, "outside the tolerance"),
        (sign("s", NOW, BODY), BODY, NOW - 301, "outside the tolerance"),
        (sign("other", NOW, BODY), BODY, NOW, "does not match"),
        (sign("s", NOW, BODY), BODY + b" ", NOW, "does not match"),
        (sign("s", NOW, BODY).replace(f"t={NOW}", f"t={NOW + 1}"), BODY, NOW, "does not match"),
        (f"t={NOW},v1=ünïcode", BODY, NOW, "does not match"),
    ],
)
def test_bad_signatures_are_refused_with_a_reason(
    header: str | None, body: bytes, now: float, reason: str
) -> None:
    with pytest.raises(SignatureError) as refused:
        verify_signature(header, body, ["s"], now, tolerance=300)
    assert reason in refused.value.reason


def test_secrets_stay_out_of_reprs() -> None:
    source = Source(name="mailer", webhook_secrets=(SecretStr("hunter2"),))
    assert "hunter2" not in repr(source)
