"""The codec server: Temporal's remote codec protocol over the project's
``EncryptionCodec``, so that the Temporal UI (and ``temporal --codec-endpoint``) show
payloads decrypted to whoever holds an API key with the scope ``payloads:read``.

``POST /decode`` and ``POST /encode`` take and answer ``{"payloads": [...]}``, each a
``Payload`` in protobuf's JSON (metadata values and data in base64); the UI names the
namespace in ``X-Namespace``. Decoding needs no context: every payload names its key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from activities.store import Store
from runtime.codec import EncryptionCodec, PayloadDecryptionError, data_converter
from runtime.credentials import Scope, Source, source_for_key
from runtime.settings import Settings
from service.api import on_problem
from service.dependencies import bearer, unauthorized
from service.middleware import RequestLog
from service.problems import Problem, ProblemError
from service.serving import listening, served

log = structlog.get_logger(__name__)


def create_codec_app(
    codec: EncryptionCodec,
    sources: Sequence[Source],
    allowed_origins: Sequence[str],
    keys_required: bool = True,
) -> FastAPI:
    """The app; ``keys_required=False`` only for the embedded stack's loopback server,
    whose UI (no login) has no token to send."""
    app = FastAPI(title="Equator codec server", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.codec = codec
    app.state.sources = tuple(sources) if keys_required else None
    app.add_middleware(RequestLog)
    # Added last, so outermost: refusals (401, 403) carry CORS headers too; without them
    # the browser reports a network error instead of the status.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(allowed_origins),
        allow_methods=["POST", "OPTIONS"],
        allow_headers=["Content-Type", "X-Namespace", "Authorization"],
        allow_credentials=True,
    )
    app.add_exception_handler(ProblemError, on_problem)
    app.include_router(router)
    return app


async def _payload_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    x_namespace: Annotated[str | None, Header()] = None,
) -> None:
    """A key (401) whose source holds ``payloads:read`` (403), as the ingest API checks."""
    structlog.contextvars.bind_contextvars(namespace=x_namespace)
    sources: tuple[Source, ...] | None = request.app.state.sources
    if sources is None:
        return
    source = credentials and source_for_key(sources, credentials.credentials)
    if not source:
        log.info("auth.refused", reason="missing or unknown API key")
        raise unauthorized("a valid API key is required: Authorization: Bearer <key>")
    structlog.contextvars.bind_contextvars(source=source.name)
    if Scope.PAYLOADS_READ not in source.granted:
        log.info("auth.forbidden", missing_scopes=[Scope.PAYLOADS_READ])
        detail = f"the API key of source {source.name!r} lacks the scope {Scope.PAYLOADS_READ}"
        raise ProblemError(Problem(title="Forbidden", status=403, detail=detail))


router = APIRouter(dependencies=[Depends(_payload_reader)])


@router.post("/decode")
async def decode(request: Request) -> JSONResponse:
    """Each payload decrypted; one whose key is gone (its customer was erased) or that was
    altered comes back as it came, still encrypted, and the others decode."""
    codec: EncryptionCodec = request.app.state.codec
    opened = []
    for payload in await _payloads(request):
        try:
            [plain] = await codec.decode([payload])
        except PayloadDecryptionError as err:
            log.info("codec_server.undecodable", reason=str(err))
            plain = payload
        opened.append(plain)
    return _answer(opened)


@router.post("/encode")
async def encode(request: Request) -> JSONResponse:
    """What the UI sends (a signal's or a start's input typed in it) encrypted under the
    shared key: the request names no workflow, so no customer's key can be chosen."""
    codec: EncryptionCodec = request.app.state.codec
    return _answer(await codec.encode(await _payloads(request)))


async def _payloads(request: Request) -> list[Payload]:
    try:
        return list(json_format.Parse(await request.body(), Payloads()).payloads)
    except json_format.ParseError as err:
        detail = f'the body is not {{"payloads": [...]}} in protobuf JSON: {err}'
        raise ProblemError(Problem(title="Invalid payloads", status=400, detail=detail)) from None


def _answer(payloads: Sequence[Payload]) -> JSONResponse:
    body: dict[str, Any] = {"payloads": [json_format.MessageToDict(p) for p in payloads]}
    return JSONResponse(body)


@asynccontextmanager
async def running_codec_server(
    settings: Settings,
    allowed_origins: Sequence[str] = (),
    keys_required: bool = True,
) -> AsyncIterator[str]:
    """Serve the codec server until the block ends; yields its base URL (port 0 picks
    one). Answers the configured origins and ``allowed_origins``. Needs encryption on."""
    codec = data_converter(settings).payload_codec
    if not isinstance(codec, EncryptionCodec):
        raise RuntimeError(
            "the codec server needs payload encryption: set EQUATOR_ENCRYPTION__MASTER_KEYS "
            "and __ACTIVE_MASTER_KEY (README, Customer data held safely)"
        )
    config = settings.codec_server
    sock = listening(config.host, config.port)
    store = Store(settings.database_url)
    try:
        # The data keys' table may not be there yet if no worker has started.
        await store.migrate()
        app = create_codec_app(
            codec,
            settings.ingest.sources,
            (*config.allowed_origins, *allowed_origins),
            keys_required,
        )
        async with served(app, sock, "the codec server") as url:
            yield url
    finally:
        sock.close()
        await store.close()
        await codec.keys.close()
