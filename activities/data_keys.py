"""Per-customer data keys: what the payload codec (``runtime/codec.py``) encrypts a
journey's payloads under, kept in the store (``DataKey``) wrapped by a master key.

- ``MasterKeys`` wraps and unwraps data keys: ``LocalMasterKeys`` with the master keys of
  the configuration, or, later, a KMS behind the same two calls.
- ``DataKeys``: a customer's current key (created on first use, one per customer however
  many processes race to create it), any key by the id a payload names, and the erased
  customers' keys and their shredding.
- ``KeyShredder``: deletes an erased customer's keys once their journey has ended.

Why a journey's keys outlive its erasure by a moment: the erasure (``erase_customer``, the
journey's last pass) only marks the customer's keys with the run that erases them, in
the transaction that deletes their rows. That run still needs them: its last workflow task
decodes the erasure's result and encodes its end, and a worker that has not cached it (a
restart, an eviction, another worker taking over) replays it from its first event, which
needs every payload the run ever had. Deleted then, the run would fail its workflow task
for good and never end. So the shredder deletes the keys once the run has ended; from
then on no payload of that history decrypts, on any worker or anyone's copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from time import monotonic
from typing import Generic, Protocol, TypeVar

import structlog
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Update, delete, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select
from temporalio.service import RPCError

from activities.store import DataKey, ErasedCustomer, Store, customer_digest, utcnow

log = structlog.get_logger(__name__)

# The owner of the one key shared by every payload of no journey (campaign fan-outs, their
# Schedules, a call without context). Never a customer id: those match [A-Za-z0-9._:@-]+.
SHARED = "*"

# How long a process keeps a key it has read: an erasure shreds the keys in the store, and
# a process that read one keeps it at most this long (the window in which a shredded key
# still decrypts there). Short, so that erasure reaches every process soon; long enough
# that a busy journey costs one read a minute, not one per payload.
CACHE_TTL = timedelta(minutes=1)
# Keys held at most (a few hundred bytes each): the journeys in flight, with room.
CACHE_SIZE = 10_000
# How often a worker looks for erased customers whose journey has ended.
SHRED_EVERY = timedelta(seconds=2)

_NONCE = 12


class MasterKeys(Protocol):
    """Wraps data keys under a master key and unwraps them again: the plug-in point for a
    KMS. ``context`` (the data key's id) is bound to the wrapping, so a wrapped key copied
    to another row does not unwrap."""

    async def wrap(self, key: bytes, context: bytes) -> tuple[str, bytes]:
        """The key wrapped under the active master key, and that master key's id."""
        ...

    async def unwrap(self, master_key_id: str, wrapped: bytes, context: bytes) -> bytes: ...


class LocalMasterKeys:
    """Master keys from configuration (``EQUATOR_ENCRYPTION__MASTER_KEYS``): AES-256-GCM
    with a random nonce. ``active`` wraps new data keys; every key unwraps what it
    wrapped, so a rotation only adds a key and makes it active."""

    def __init__(self, keys: Mapping[str, bytes], active: str) -> None:
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._active = active

    async def wrap(self, key: bytes, context: bytes) -> tuple[str, bytes]:
        nonce = secrets.token_bytes(_NONCE)
        return self._active, nonce + self._ciphers[self._active].encrypt(nonce, key, context)

    async def unwrap(self, master_key_id: str, wrapped: bytes, context: bytes) -> bytes:
        cipher = self._ciphers.get(master_key_id)
        if cipher is None:
            raise LookupError(
                f"master key {master_key_id!r} wraps a data key and is not configured: "
                "keep every master key in EQUATOR_ENCRYPTION__MASTER_KEYS that still wraps one"
            )
        return cipher.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], context)


def new_master_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


@dataclass(frozen=True)
class Key:
    """A data key, unwrapped."""

    id: str
    customer_id: str
    cipher: AESGCM


K = TypeVar("K")
V = TypeVar("V")


class _Expiring(Generic[K, V]):
    """At most ``size`` entries, each kept for ``ttl``; the least recently used go first."""

    def __init__(self, size: int, ttl: timedelta) -> None:
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._size = size
        self._ttl = ttl.total_seconds()

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (monotonic() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def drop(self, gone: Callable[[V], bool]) -> None:
        for key in [key for key, (_, value) in self._entries.items() if gone(value)]:
            del self._entries[key]


def erasing(customer_id: str, run_id: str) -> Update:
    """The erasure's mark on the customer's keys, in its transaction: shred them once the
    journey run ``run_id`` has ended. A retried erasure keeps the first mark."""
    return (
        update(DataKey)
        .where(col(DataKey.customer_id) == customer_id, col(DataKey.erased_in_run).is_(None))
        .values(erased_in_run=run_id)
    )


class DataKeys:
    """The data keys in the store at ``database_url``, and the ones this process has read.

    The codec lives as long as its Temporal client, which nothing closes, so this store's
    connections are closed whenever none is in use (keys are read seldom: once a minute for
    a busy journey). A pooled connection left to the garbage collector warns, and SQLite's
    keeps a thread that holds the process open at exit."""

    def __init__(
        self,
        database_url: str,
        master: MasterKeys,
        ttl: timedelta = CACHE_TTL,
        size: int = CACHE_SIZE,
    ) -> None:
        self._store = Store(database_url)
        self._master = master
        self._current: _Expiring[str, Key] = _Expiring(size, ttl)
        self._by_id: _Expiring[str, Key] = _Expiring(size, ttl)
        self._in_use = 0
        self._disposing = asyncio.Lock()

    async def current(self, customer_id: str) -> Key:
        """The key the customer's new payloads are encrypted under: their newest,
        created on first use. An erased customer's keys serve until shredded: the erasing
        run's last payloads are theirs too."""
        key = self._current.get(customer_id)
        if key is None:
            row = await self._newest(customer_id)
            if row is None and customer_id != SHARED and await self._was_erased(customer_id):
                # No new key for an erased customer: what their ended journey still writes
                # (the failure of a query that cannot decrypt it) goes under the shared one.
                return await self.current(SHARED)
            key = await self._unwrapped(row or await self._create(customer_id))
            self._current.put(customer_id, key)
        return key

    async def find(self, key_id: str) -> Key | None:
        """The key a payload names; None once it is shredded (or if it never was here)."""
        key = self._by_id.get(key_id)
        if key is None:
            async with self._opened() as store, store.reading() as session:
                row = await session.get(DataKey, key_id)
            if row is None:
                return None
            key = await self._unwrapped(row)
        return key

    async def erased(self) -> list[tuple[str, str]]:
        """Each erased customer whose keys are still here, with the run that erased them."""
        query = (
            select(DataKey.customer_id, DataKey.erased_in_run)
            .where(col(DataKey.erased_in_run).is_not(None))
            .distinct()
        )
        async with self._opened() as store, store.reading() as session:
            return [(customer, str(run)) for customer, run in (await session.exec(query)).all()]

    async def shred(self, customer_id: str) -> int:
        """Delete every key of the customer. This process stops decrypting their payloads
        at once, every other within ``CACHE_TTL``. Returns how many keys went."""
        async with self._opened() as store, store.transaction() as session:
            connection = await session.connection()
            where = col(DataKey.customer_id) == customer_id
            shredded = (await connection.execute(delete(DataKey).where(where))).rowcount
            tombstone = col(ErasedCustomer.customer_digest) == customer_digest(customer_id)
            await connection.execute(
                update(ErasedCustomer).where(tombstone).values(shredded_at=utcnow())
            )
        self._current.drop(lambda key: key.customer_id == customer_id)
        self._by_id.drop(lambda key: key.customer_id == customer_id)
        return shredded

    async def close(self) -> None:
        await self._store.close()

    async def _newest(self, customer_id: str) -> DataKey | None:
        query = (
            select(DataKey)
            .where(col(DataKey.customer_id) == customer_id)
            .order_by(col(DataKey.generation).desc())
            .limit(1)
        )
        async with self._opened() as store, store.reading() as session:
            return (await session.exec(query)).first()

    async def _was_erased(self, customer_id: str) -> bool:
        async with self._opened() as store, store.reading() as session:
            return await session.get(ErasedCustomer, customer_digest(customer_id)) is not None

    async def _create(self, customer_id: str) -> DataKey:
        """The customer's first key. Processes creating it at once all insert generation
        1: one wins, the others read its key."""
        key_id = secrets.token_hex(16)
        master_key_id, wrapped = await self._master.wrap(
            AESGCM.generate_key(bit_length=256), key_id.encode()
        )
        async with self._opened() as store, store.transaction() as session:
            insert = store.insert(DataKey).values(
                key_id=key_id,
                customer_id=customer_id,
                generation=1,
                master_key_id=master_key_id,
                wrapped=wrapped,
                created_at=utcnow(),
            )
            connection = await session.connection()
            await connection.execute(
                insert.on_conflict_do_nothing(index_elements=["customer_id", "generation"])
            )
        created = await self._newest(customer_id)
        assert created is not None, "a key just inserted"
        return created

    async def _unwrapped(self, row: DataKey) -> Key:
        secret = await self._master.unwrap(row.master_key_id, row.wrapped, row.key_id.encode())
        key = Key(row.key_id, row.customer_id, AESGCM(secret))
        self._by_id.put(key.id, key)
        return key

    @asynccontextmanager
    async def _opened(self) -> AsyncIterator[Store]:
        """The store, for one use; its connections closed when the last use ends."""
        async with self._disposing:
            self._in_use += 1
        try:
            yield self._store
        finally:
            self._in_use -= 1
            if not self._in_use:
                async with self._disposing:
                    if not self._in_use:
                        await self._store.engine.dispose()


class KeyShredder:
    """Shreds erased customers' keys once the journey run that erased them has ended
    (``ended(customer_id, run_id)``, which asks Temporal), looking every ``every``. Every
    worker runs one; two shredding the same customer delete nothing twice."""

    def __init__(
        self,
        keys: DataKeys,
        ended: Callable[[str, str], Awaitable[bool]],
        every: timedelta = SHRED_EVERY,
    ) -> None:
        self._keys = keys
        self._ended = ended
        self._every = every.total_seconds()

    async def shred_ended(self) -> list[str]:
        """One round; returns the customers whose keys went."""
        shredded = []
        for customer_id, run_id in await self._keys.erased():
            if await self._ended(customer_id, run_id):
                await self._keys.shred(customer_id)
                log.info("data_keys.shredded", customer_id=customer_id, run_id=run_id)
                shredded.append(customer_id)
        return shredded

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self._run(), name="key shredder")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.shred_ended()
            except (SQLAlchemyError, OSError, RPCError) as err:
                # The store or Temporal is down: the next round tries again.
                log.warning("data_keys.shred_failed", error=str(err))
            except Exception:
                log.exception("data_keys.shred_failed")
            await asyncio.sleep(self._every)
