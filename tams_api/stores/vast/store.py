"""`VastMetadataStore`: the VAST metadata store, composed of one mixin per concern (see the package docstring)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .analytics import AnalyticsMixin
from .delete_requests import DeleteRequestsMixin
from .flows import FlowsMixin
from .leases import LeasesMixin
from .objects import ObjectsMixin
from .release import ReleaseMixin
from .schema import ensure_schema
from .segments import SegmentsMixin
from .service import ServiceMixin
from .session import open_session
from .soft_delete import SoftDeleteMixin
from .sources import SourcesMixin
from .tags import TagsMixin
from .webhooks import WebhooksMixin


# The concerns in the order of the repository interface's sections (stores/metadata.py), then the tags they share.
class VastMetadataStore(
    FlowsMixin,
    SourcesMixin,
    SegmentsMixin,
    ObjectsMixin,
    SoftDeleteMixin,
    DeleteRequestsMixin,
    ReleaseMixin,
    WebhooksMixin,
    ServiceMixin,
    AnalyticsMixin,
    LeasesMixin,
    TagsMixin,
):
    reads_inline = False  # a read is a round trip to the cluster

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        schema: str = "tams",
        connect: Callable[..., Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.bucket = bucket
        self.schema = schema
        self.session = open_session(endpoint, access_key, secret_key, connect, timeout)
        self.schema_upgrade, _ = ensure_schema(self.session, bucket, schema)
        self._write_lock = threading.Lock()
        self._retrying = threading.local()  # `active` while a write method runs under `_retried_on_conflict`
