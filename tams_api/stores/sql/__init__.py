"""The metadata store in SQL, written once for SQLite (stores/sqlite) and PostgreSQL (stores/postgres).

One module per concern, each a mixin of the store on top of the database's connections (connection.py):
    rows.py             SQL fragments and row helpers several record kinds share
    service.py          service information and flow profiles
    tags.py             tags of sources, flows and webhooks
    sources.py          sources
    flows.py            flows and flow collections
    soft_delete.py      soft-deleted flows (extension)
    segments.py         segments: registration, listing, deletion
    objects.py          media objects and their instances
    release.py          media to delete
    webhooks.py         webhooks and the event outbox
    delete_requests.py  flow delete requests
    analytics.py        analytics (extension)
    leases.py           the worker's lease
"""

from __future__ import annotations

from .analytics import AnalyticsMixin
from .delete_requests import DeleteRequestsMixin
from .flows import FlowsMixin
from .leases import LeasesMixin
from .objects import ObjectsMixin
from .release import ReleaseMixin
from .segments import SegmentsMixin
from .service import ServiceMixin
from .soft_delete import SoftDeleteMixin
from .sources import SourcesMixin
from .tags import TagsMixin
from .webhooks import WebhooksMixin

__all__ = ["SqlMetadataStore"]


class SqlMetadataStore(
    ServiceMixin,
    TagsMixin,
    SourcesMixin,
    FlowsMixin,
    SoftDeleteMixin,
    SegmentsMixin,
    ObjectsMixin,
    ReleaseMixin,
    WebhooksMixin,
    DeleteRequestsMixin,
    AnalyticsMixin,
    LeasesMixin,
):
    """Every record kind's mixin; a backend's store puts its connections under them."""
