"""Schema-driven fuzzing of the ingest API: no request, however malformed, gets a 5xx.

Schemathesis generates requests from the served OpenAPI document (valid and invalid
ones) and sends them over real HTTP to a real `equator run --no-demo` (dev server,
worker, API). The example budget is small for CI; raise it with
``EQUATOR_FUZZ_EXAMPLES=2000 .venv/bin/pytest tests/test_api_fuzz.py``.
"""

from __future__ import annotations

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

from tests.servers import embedded_stack

PER_ITEM = {"/v1/events:batch", "/v1/webhooks/{source}/email"}
# Per generation mode (valid, invalid), across all operations.
EXAMPLES = int(os.environ.get("EQUATOR_FUZZ_EXAMPLES", "150"))


@dataclass(frozen=True)
class Stack:
    url: str
    key: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("fuzz")
    environment = embedded_stack(data)
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
        yield Stack(url=url, key=(data / "api-key").read_text().strip())
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
