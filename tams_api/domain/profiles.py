"""Flow profiles: created once and never changed (a flow created from one copies it, so a change would make
flows disagree with the profile they name)."""

from __future__ import annotations

import functools

from ..errors import BadRequest
from ..model import Profile
from ..stores.metadata import MetadataStore, Transaction
from . import found


def find(store: MetadataStore, profile_id: str) -> Profile | None:
    """The profile, or None when none has that id."""
    return store.read(lambda tx: store.profile_record(tx, profile_id))


def get(store: MetadataStore, profile_id: str) -> Profile:
    """The profile, which must exist."""
    return found(find(store, profile_id), "profile", profile_id)


def create(store: MetadataStore, profile: Profile) -> None:
    """Store a new profile; one of that id exists already and cannot be changed."""
    store.write(functools.partial(_create, store, profile))


def _create(store: MetadataStore, profile: Profile, tx: Transaction) -> None:
    if store.profile_record(tx, profile.id) is not None:
        raise BadRequest(f"profile {profile.id} exists already; profiles cannot be changed, create a new one")
    store.insert_profile(tx, profile)
