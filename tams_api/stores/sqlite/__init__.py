"""The embedded metadata store: SQLite in WAL mode, one writer, short transactions.

One module per concern, each a mixin of the store on top of the connections:
    connection.py       connections, the reader pool, transactions, busy handling
    schema.py           the schema and its migrations
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

__all__ = ["SqliteMetadataStore"]


class SqliteMetadataStore(
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
    """The metadata store on one SQLite file: the connections' constructor, and every record kind's mixin."""
