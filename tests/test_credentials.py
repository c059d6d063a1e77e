"""API keys, their scopes and webhook signatures, without a server."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError
from structlog.testing import capture_logs

from activities.signatures import SignatureError, sign, verify_signature
from runtime.credentials import LEGACY_SCOPES, Scope, Source, hash_key, new_key, source_for_key
from runtime.settings import IngestSettings
from service.serving import warn_of_unscoped_keys

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


def test_scopes_come_from_the_configuration_and_a_source_without_them_keeps_its_old_rights() -> (
    None
):
    settings = IngestSettings.model_validate_json(
        '{"sources": [{"name": "crm", "key_hashes": [], "scopes": ["journeys:read", '
        '"reports:read"]}, {"name": "pos"}, {"name": "mailer", "scopes": []}]}'
    )
    crm, pos, mailer = settings.sources
    assert crm.granted == {Scope.JOURNEYS_READ, Scope.REPORTS_READ}
    assert pos.scopes is None
    assert (
        pos.granted
        == LEGACY_SCOPES
        == {
            Scope.EVENTS_WRITE,
            Scope.JOURNEYS_READ,
            Scope.CUSTOMERS_ERASE,
        }
    )
    assert Scope.REPORTS_READ not in pos.granted
    assert mailer.granted == frozenset()
    with pytest.raises(ValidationError, match="events:write"):
        Source.model_validate({"name": "pos", "scopes": ["events:read"]})


def test_a_keyed_source_without_scopes_is_warned_of_naming_it_and_the_fix() -> None:
    with capture_logs() as lines:
        warn_of_unscoped_keys(
            [
                Source(name="pos", key_hashes=(hash_key(new_key()),)),
                Source(name="till", key_hashes=(hash_key(new_key()),), scopes={Scope.EVENTS_WRITE}),
                # Webhooks only: a key's scopes mean nothing to it.
                Source(name="mailer", webhook_secrets=(SecretStr("s"),)),
            ]
        )
    [line] = lines
    assert (line["log_level"], line["event"], line["source"]) == (
        "warning",
        "auth.unscoped_source",
        "pos",
    )
    assert "deprecated" in line["advice"]
    assert '"scopes": ["customers:erase", "events:write", "journeys:read"]' in line["advice"]
