"""What the delivery tests share: real providers on free local ports that misbehave when
told (an SMTP server, aiosmtpd; one that takes connections and never answers; an HTTP
webhook receiver, ``http.server`` in a thread, that checks signatures with the ingest
API's own verifier and, as a provider does, keeps a message whose idempotency key it
already has only once), and engagements sent through the real activity."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlmodel import select

from activities.channels import DeliveryPolicy
from activities.courier import Courier, DeliverySettings
from activities.delivery.smtp import SmtpConfig
from activities.delivery.webhook import WebhookConfig
from activities.engagements import EngagementActivities
from activities.signatures import SIGNATURE_HEADER, SignatureError, verify_signature
from activities.store import Customer, OutboxMessage, Store, utcnow
from tests.journeys import engagement_request
from tests.servers import eventually, free_port
from workflows.contact import ContactPolicy

WEBHOOK_SECRET = "whsec-provider"
# Retries come quickly in tests; the back-off's shape is the policy's own.
QUICK = DeliveryPolicy(
    initial_interval=timedelta(seconds=0.05),
    maximum_interval=timedelta(seconds=0.4),
    maximum_attempts=50,
)


async def add_customer(
    store: Store,
    customer_id: str,
    email: str | None = None,
    preferred: list[str] | None = None,
) -> None:
    now = utcnow()
    async with store.transaction() as session:
        session.add(
            Customer(
                customer_id=customer_id,
                first_seen_at=now,
                updated_at=now,
                email=email,
                preferred_channels=preferred or [],
            )
        )


async def send(store: Store, customer_id: str, channel: str = "email", step: int = 1) -> str:
    """Send a silence ladder's step through the real activity; its idempotency key."""
    key = f"customer-{customer_id}/run/silence-1/step-{step}"
    request = engagement_request(key, customer_id).model_copy(
        update={"channel": channel, "step": step}
    )
    await EngagementActivities(store).send_engagement(request)
    return key


async def outbox(store: Store) -> dict[str, OutboxMessage]:
    """The outbox by idempotency key."""
    async with store.reading() as session:
        rows = await session.exec(select(OutboxMessage))
        return {row.idempotency_key: row for row in rows.all()}


@asynccontextmanager
async def courier(store: Store, **channels: SmtpConfig | WebhookConfig) -> AsyncIterator[None]:
    """A courier delivering through ``channels`` (by name), looking every 50 ms."""
    settings = DeliverySettings(channels=channels, interval=timedelta(seconds=0.05))
    async with Courier(store, settings, ContactPolicy()).running(grace=timedelta(seconds=5)):
        yield


async def settled(store: Store, key: str) -> OutboxMessage:
    """The row once the courier is done with it (delivered, failed or no channel)."""
    rows = await eventually(lambda: outbox(store), lambda rows: rows[key].status != "pending")
    return rows[key]


class SmtpSink:
    """An SMTP server that keeps what it accepts. ``refusals`` are answered to the next
    messages' DATA (``"451 …"``), ``rcpt_refusals`` to their recipients, in order."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self.refusals: list[str] = []
        self.rcpt_refusals: list[str] = []
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        """The server goes away: connections are refused until ``start``."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def message_ids(self) -> Counter[str]:
        return Counter(str(m["Message-ID"]) for m in self.messages)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.rcpt_refusals:
            return self.rcpt_refusals.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refusals:
            return self.refusals.pop(0)
        content = cast(bytes, envelope.original_content)
        message = message_from_bytes(content, policy=policy.default)
        self.messages.append(message)
        return f"250 2.0.0 Ok: queued as Q{len(self.messages)}"


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@asynccontextmanager
async def silent_smtp_server() -> AsyncIterator[int]:
    """A server that takes the connection and never says a word (not even its greeting)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@dataclass
class Request:
    idempotency_key: str | None
    body: bytes
    # Why the signature was refused, or None when it verified.
    signature_refused: str | None


@dataclass
class WebhookSink:
    """What the receiver was sent, and how it answers: ``script`` lists the answers to
    the next requests (a status such as ``500``, ``"hang"``: take the message, answer
    only after the client has given up; ``"close"``: drop the connection unanswered),
    then ``200`` with an id; ``down`` answers ``503`` to everything."""

    port: int
    script: list[int | str] = field(default_factory=list)
    down: bool = False
    requests: list[Request] = field(default_factory=list)
    # How often each key's message arrived whole (a lost answer makes it twice), and the
    # id it was kept under, once: a resend gets the same id.
    taken: Counter[str] = field(default_factory=Counter)
    accepted: dict[str, str] = field(default_factory=dict)
    hang_for: float = 2.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/messages"

    def keys(self) -> Counter[str | None]:
        return Counter(request.idempotency_key for request in self.requests)

    def answer(self, request: Request) -> tuple[int | str, str | None]:
        """What to do with one request, and the accepted id to answer with."""
        with self._lock:
            self.requests.append(request)
            if request.signature_refused is not None:
                return 401, None
            action: int | str = self.script.pop(0) if self.script else 200
            if self.down:
                action = 503
            if action not in (200, "hang") or request.idempotency_key is None:
                return action, None
            key = request.idempotency_key
            self.taken[key] += 1
            accepted = self.accepted.setdefault(key, f"msg-{len(self.accepted) + 1}")
            return action, accepted

    def hang(self) -> None:
        self._stopping.wait(self.hang_for)

    def stop(self) -> None:
        """Let go of requests still hanging."""
        self._stopping.set()


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True
    # Room for every courier's batch at once: an overflowing backlog drops connections.
    request_queue_size = 64

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.sink = WebhookSink(port=int(self.server_address[1]))


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        sink = self.server.sink
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            verify_signature(
                self.headers.get(SIGNATURE_HEADER), body, [WEBHOOK_SECRET], time.time(), 300
            )
            refused = None
        except SignatureError as err:
            refused = err.reason
        action, accepted = sink.answer(Request(self.headers.get("Idempotency-Key"), body, refused))
        if action == "close":
            self.close_connection = True
            return
        if action == "hang":
            sink.hang()
            action = 200
        payload = f'{{"id": "{accepted}"}}'.encode() if accepted else b"{}"
        self.send_response(int(action))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the sink, not the server's log."""


@contextmanager
def webhook_sink() -> Iterator[WebhookSink]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.sink
    finally:
        server.sink.stop()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
