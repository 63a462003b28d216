"""Connecting to VAST and transactions: the session, the store's tables within one transaction (`_Tx`), reads and
writes (`Transactions`, the base of every mixin of the store), the retry of writes that lost to a concurrent
writer (`_retried_on_conflict`) and the write guards that make such writers conflict (`_guard`)."""

from __future__ import annotations

import functools
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import vastdb
from vastdb import errors

from ...errors import ConfigurationError, Unavailable
from .rows import _select, _update
from .schema import GUARD_STRIPES

if TYPE_CHECKING:
    from .store import VastMetadataStore

P = ParamSpec("P")
R = TypeVar("R")

CONFLICT_ATTEMPTS = 6  # tries of a write that concurrent writers keep beating, before answering 503
CONFLICT_BACKOFF_S = 0.02  # the first retry waits up to this (full jitter), doubling with each attempt


# -- connecting -----------------------------------------------------------------------------------------------------


def open_session(
    endpoint: str,
    access_key: str,
    secret_key: str,
    connect: Callable[..., Any] | None = None,
    timeout: float | None = None,
) -> Any:
    """A vastdb Session (connecting checks the server and the keys); bad ones fail here, naming the setting."""
    connect = connect or vastdb.connect  # looked up now, so that tests can replace `vastdb.connect`
    try:
        return connect(access=access_key, secret=secret_key, endpoint=endpoint, timeout=timeout)
    except errors.ConnectionError as error:
        raise ConfigurationError(f"TAMS_VAST_ENDPOINT: cannot connect to VAST at {endpoint} ({error})") from None
    except errors.Forbidden as error:
        raise ConfigurationError(
            f"TAMS_VAST_ACCESS_KEY / TAMS_VAST_SECRET_KEY: VAST at {endpoint} refused them ({error.code})"
        ) from None
    except errors.HttpError as error:
        raise ConfigurationError(
            f"TAMS_VAST_ENDPOINT: VAST at {endpoint} answered {error.status} {error.code}"
        ) from None


def _guard(t: _Tx, *keys: str) -> None:
    """Make this transaction conflict with every concurrent one guarding one of `keys` (first writer wins): it
    writes their stripes of `write_guards`. VAST has no unique keys; without this, two transactions that both
    read "absent" would both insert."""
    stripes = sorted({zlib.crc32(key.encode()) % GUARD_STRIPES for key in keys})
    table = t["write_guards"]
    rows = _select(table, table["stripe"].isin(stripes), row_ids=True)
    if {row["stripe"] for row in rows} != set(stripes):
        raise RuntimeError(f"VAST table write_guards lacks stripes of {keys}: run `tams-api provision vast`")
    for row in rows:
        row["writes"] += 1
    _update(table, "write_guards", rows, ["writes"])


def _retried_on_conflict(method: Callable[Concatenate[VastMetadataStore, P], R]) -> Callable[..., R]:
    """A write method run again, on a fresh snapshot, when its transaction lost to a concurrent writer: VAST
    raises `errors.Conflict` (HTTP 409) on the losing write or commit and applies nothing of it. The SDK retries
    no conflict itself. After CONFLICT_ATTEMPTS tries, `Unavailable` (503). Every writing method has this:
    `_write` refuses to run outside it."""

    @functools.wraps(method)
    def retrying(self: VastMetadataStore, *args: P.args, **kwargs: P.kwargs) -> R:
        self._retrying.active = True
        try:
            for attempt in range(1, CONFLICT_ATTEMPTS):
                try:
                    return method(self, *args, **kwargs)
                except errors.Conflict:
                    time.sleep(random.uniform(0, CONFLICT_BACKOFF_S * 2 ** (attempt - 1)))
            try:
                return method(self, *args, **kwargs)
            except errors.Conflict:
                raise Unavailable(
                    f"concurrent writers changed the same data {CONFLICT_ATTEMPTS} times in a row; nothing was "
                    "changed, try again"
                ) from None
        finally:
            self._retrying.active = False

    return retrying


class _Tx:
    """The store's tables within one transaction, looked up on first use."""

    def __init__(self, tx: Any, bucket: str, schema: str) -> None:
        self._tx = tx
        self._bucket = bucket
        self._schema_name = schema
        self._schema: Any = None
        self._tables: dict[str, Any] = {}
        self.listening: bool | None = None  # whether a webhook listens, once asked

    def __getitem__(self, name: str) -> Any:
        if name not in self._tables:
            if self._schema is None:
                self._schema = self._tx.bucket(self._bucket).schema(self._schema_name)
            self._tables[name] = self._schema.table(name)
        return self._tables[name]


class Transactions:
    """Reads and writes of the store, each in a transaction of its own; the store's constructor sets `bucket`,
    `schema`, `session` and the write lock."""

    bucket: str
    schema: str
    session: Any
    _write_lock: threading.Lock
    _retrying: threading.local

    @contextmanager
    def _read(self) -> Iterator[_Tx]:
        with self._transaction() as t:
            yield t

    @contextmanager
    def _write(self) -> Iterator[_Tx]:
        """One writer in this process at a time (no conflicts among our own requests); conflicts with other
        processes are retried by `_retried_on_conflict`, which every writing method has."""
        if not getattr(self._retrying, "active", False):
            raise RuntimeError("a VAST write outside _retried_on_conflict: its conflicts would not be retried")
        with self._write_lock, self._transaction() as t:
            yield t

    def read(self, work: Callable[[_Tx], R]) -> R:
        with self._read() as t:
            return work(t)

    @_retried_on_conflict
    def write(self, work: Callable[[_Tx], R]) -> R:
        with self._write() as t:
            return work(t)

    @contextmanager
    def _transaction(self) -> Iterator[_Tx]:
        try:
            with self.session.transaction() as tx:
                yield _Tx(tx, self.bucket, self.schema)
        except (errors.MissingSchema, errors.MissingTable) as error:
            raise RuntimeError(
                f"VAST {self.bucket}/{self.schema}: {error!r} is missing: run `tams-api provision vast`"
            ) from None

    def close(self) -> None:
        """The SDK's session holds no resources that need closing."""

    def probe(self) -> None:
        with self._read() as t:
            _select(t["leases"], columns=["name"], limit=1)
