"""Versioned schemas: a metadata store records the version of its schema, and opening a store of an earlier
version brings it to the latest, one migration per transaction, whichever backend it is.

Each backend lists its migrations in order, the one to version N at index N - 1, with its schema. Version 1
adopts what the store held before versions were recorded (version 0). A migration must leave the schema usable
by the previous release: during a rollout, pods of that release still serve on the migrated store.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ..errors import ConfigurationError

C = TypeVar("C")  # what a backend's migration changes: its view of the store within one transaction
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Migration(Generic[C]):
    """The change from version `version - 1` to `version`, made within the transaction it is given."""

    version: int
    summary: str
    apply: Callable[[C], None]


def adopt(_: object) -> None:
    """The migration to version 1 of a backend whose stores from before versions were recorded have its schema: it
    only records the version."""


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What opening a store did to its schema."""

    place: str  # the store, for people: "SQLite /data/tams.sqlite"
    before: int | None  # None: the store was empty and was created at `after`
    after: int

    def __str__(self) -> str:
        if self.before is None:
            return f"{self.place}: created at schema version {self.after}"
        if self.before == self.after:
            return f"{self.place}: already at schema version {self.after}"
        return f"{self.place}: migrated from schema version {self.before} to {self.after}"


class VersionedStore(Protocol[C]):
    """A backend's access to its schema and the version recorded with it."""

    setting: str  # the setting that chose the store, for one-line errors
    place: str
    retried: tuple[type[Exception], ...]  # a transaction lost to a concurrent one (another replica migrating)

    def transaction(self) -> AbstractContextManager[C]:
        """Commits on leaving, rolls back on an exception."""
        ...

    def version(self, store: C) -> int | None:
        """The recorded version; 0 when the store's tables exist without one; None when it has none."""
        ...

    def create(self, store: C) -> None:
        """The latest schema, in a store that has none."""
        ...

    def record(self, store: C, version: int) -> None: ...


ATTEMPTS = 6  # transactions that concurrent migrators may win in a row before giving up
BACKOFF_S = 0.05  # the first retry waits up to this (full jitter), doubling with each: the winner commits meanwhile


def upgrade(store: VersionedStore[C], migrations: Sequence[Migration[C]]) -> Upgrade:
    """Bring the store to the latest version: create it when empty, else apply each migration it lacks, each in a
    transaction that first reads the version again, so that concurrent starts apply each migration once."""
    latest = len(migrations)
    if [migration.version for migration in migrations] != list(range(1, latest + 1)):
        raise ValueError(f"migrations must go to versions 1 to {latest} in order")
    found: list[int | None] = []  # the version each committed transaction found
    lost = 0
    while True:
        try:
            with store.transaction() as changing:
                version = store.version(changing)
                if version is None:
                    store.create(changing)
                    store.record(changing, latest)
                elif version > latest:
                    raise ConfigurationError(
                        f"{store.setting}: {store.place} has schema version {version}, newer than the {latest} this "
                        f"release knows: run the release that migrated it, or set {store.setting} to another store"
                    )
                elif version < latest:
                    _apply(store, changing, migrations[version])
        except store.retried:
            lost += 1
            if lost == ATTEMPTS:
                raise
            time.sleep(random.uniform(0, BACKOFF_S * 2 ** (lost - 1)))
            continue
        found.append(version)
        if version is None or version == latest:
            return Upgrade(store.place, found[0], latest)


def _apply(store: VersionedStore[C], changing: C, migration: Migration[C]) -> None:
    """One migration and its version, in the caller's transaction; a failure names the step in one line."""
    try:
        migration.apply(changing)
    except (*store.retried, ConfigurationError):
        raise
    except Exception as error:
        raise ConfigurationError(
            f"{store.setting}: {store.place}: migrating to schema version {migration.version} "
            f"({migration.summary}) failed and was rolled back: {error}"
        ) from error
    store.record(changing, migration.version)
    log.info("%s: migrated to schema version %d: %s", store.place, migration.version, migration.summary)
