"""Schema-driven fuzzing of the ingest API: no request, however malformed, gets a 5xx,
and no keyed route answers a key without its scope.

Schemathesis generates requests from the served OpenAPI document (valid and invalid
ones) and sends them over real HTTP to a real `equator run --no-demo` (dev server,
worker, API). The example budget is small for CI; raise it with
``EQUATOR_FUZZ_EXAMPLES=2000 .venv/bin/pytest tests/test_api_fuzz.py``.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from runtime.credentials import Scope, hash_key, new_key
from tests.servers import embedded_stack

PER_ITEM = {"/v1/events:batch", "/v1/webhooks/{source}/email"}
# Per generation mode (valid, invalid), across all operations.
EXAMPLES = int(os.environ.get("EQUATOR_FUZZ_EXAMPLES", "150"))


@dataclass(frozen=True)
class Stack:
    url: str
    # A key with every scope.
    key: str
    # For each scope, a key with every scope but that one.
    lacking: dict[Scope, str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("fuzz")
    key = new_key()
    lacking = {scope: new_key() for scope in Scope}
    sources = [{"name": "admin", "key_hashes": [hash_key(key)], "scopes": list(Scope)}] + [
        {
            "name": f"without-{scope.value.replace(':', '-')}",
            "key_hashes": [hash_key(lacking[scope])],
            "scopes": [other for other in Scope if other != scope],
        }
        for scope in Scope
    ]
    environment = embedded_stack(data) | {"EQUATOR_INGEST__SOURCES": json.dumps(sources)}
    api_port = environment["EQUATOR_INGEST__PORT"]
    log = (data / "equator.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "starter.cli", "run", "--no-demo"],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{api_port}"
    try:
        _wait_until_ready(url, process, data / "equator.log")
        yield Stack(url=url, key=key, lacking=lacking)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"equator run exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"equator run was not ready within 90 s: {log.read_text()[-2000:]}")


@pytest.mark.parametrize("mode", list(GenerationMode))
def test_no_request_gets_a_server_error(stack: Stack, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{stack.url}/openapi.json")

    @given(case=schema.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: schemathesis.Case[Any]) -> None:
        # Every default check (no 5xx; each answer as documented in status, content type
        # and body; schema-invalid requests refused with a 4xx), with two exceptions by
        # design. The API holds rules a schema cannot state (time bounds and clock skew,
        # cents, the key's own source), so a schema-valid request may rightly get a 4xx.
        # And a batch refuses bad items one by one inside a 200, as its contract says.
        excluded = [checks.positive_data_acceptance]
        if case.operation.path in PER_ITEM:
            excluded.append(checks.negative_data_rejection)
        # Requests carry the real key, except the invalid ones made by leaving the key
        # out: those must get their 401.
        dropped_key = mode == GenerationMode.NEGATIVE and "Authorization" not in (
            case.headers or {}
        )
        headers = {} if dropped_key else {"Authorization": f"Bearer {stack.key}"}
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    fuzz()


def test_no_route_answers_a_key_without_its_scope(stack: Stack) -> None:
    """Every keyed operation, with valid requests: a key holding every scope but the
    route's gets 403 naming that scope, and no key at all gets 401."""
    paths = httpx.get(f"{stack.url}/openapi.json").json()["paths"]
    # No /v1 route goes without a key, but the signed webhooks.
    unkeyed = [
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        for method, operation in operations.items()
        if path.startswith("/v1/") and not operation.get("security")
    ]
    assert sorted(unkeyed) == [
        "POST /v1/webhooks/{source}/email",
        "POST /v1/webhooks/{source}/shopify",
    ]
    scoped = [
        (path, method, scheme, scope)
        for path, operations in paths.items()
        for method, operation in operations.items()
        for requirement in operation.get("security", [])
        for scheme, scopes in requirement.items()
        for scope in scopes
    ]
    assert len(scoped) >= 11
    schema = schemathesis.openapi.from_url(f"{stack.url}/openapi.json")
    for path, method, scheme, scope in scoped:
        key = stack.lacking[Scope(scope)]
        # The tracking spec's routes take the key as HTTP Basic's user name.
        credentials = base64.b64encode(f"{key}:".encode()).decode()
        lacking = {
            "Authorization": f"Basic {credentials}" if scheme == "HTTPBasic" else f"Bearer {key}"
        }

        @given(case=schema[path][method].as_strategy(generation_mode=GenerationMode.POSITIVE))
        @settings(
            max_examples=max(10, EXAMPLES // len(scoped)),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case[Any]) -> None:
            refused = case.call(headers=lacking)  # noqa: B023 (called in this iteration)
            assert refused.status_code == 403, (case.operation.label, refused.text)
            assert scope in refused.json()["detail"]  # noqa: B023
            assert case.call(headers={"Authorization": ""}).status_code == 401

        fuzz()
