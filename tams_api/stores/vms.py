"""Creating the VAST metadata store's bucket through VMS, the VAST management REST API (`vastpy`).

The vastdb SDK cannot create buckets: a database bucket is a VMS *view* exposing the S3 and DATABASE protocols,
with a bucket name, a bucket owner (a user with S3 keys: the identity whose keys the store uses) and a view
policy (by id; looked up here by name). `POST /api/views/` creates it, `create_dir` making its directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import urllib3
from vastpy import RESTFailure, VASTClient

from ..errors import ConfigurationError

DATABASE_PROTOCOLS = ["S3", "DATABASE"]  # a database bucket is an S3 bucket too (as VAST's own examples make it)


class BucketCreator(Protocol):
    def ensure_bucket(self, name: str) -> bool:
        """Create the database bucket `name` unless it exists; True when it was created now."""
        ...


class VmsBucketCreator:
    """A `BucketCreator` on VMS, through vastpy (HTTPS only; basic auth, optionally within a tenant)."""

    def __init__(
        self,
        endpoint: str,
        username: str,
        password: str,
        bucket_owner: str,
        view_policy: str,
        view_path: str | None = None,
        tenant: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.address = vms_address(endpoint)
        self.bucket_owner = bucket_owner
        self.view_policy = view_policy
        self.view_path = view_path
        # Without a CA file vastpy does not verify the VMS certificate (its behaviour, not ours to change).
        self.api = VASTClient(user=username, password=password, address=self.address, tenant=tenant, cert_file=ca_file)

    def ensure_bucket(self, name: str) -> bool:
        with self._explained():
            if _matching(self.api.views.get(bucket=name), "bucket", name):
                return False
            policies = _matching(self.api.viewpolicies.get(name=self.view_policy), "name", self.view_policy)
            if not policies:
                raise ConfigurationError(
                    f"TAMS_VAST_VIEW_POLICY: VMS at {self.address} has no view policy named {self.view_policy!r}"
                )
            self.api.views.post(
                path=self.view_path or f"/{name}",
                create_dir=True,
                protocols=DATABASE_PROTOCOLS,
                bucket=name,
                bucket_owner=self.bucket_owner,
                policy_id=policies[0]["id"],
            )
        return True

    @contextmanager
    def _explained(self) -> Iterator[None]:
        """vastpy's and urllib3's errors as one line naming the setting to fix."""
        try:
            yield
        except RESTFailure as error:
            detail = error.data.decode("utf-8", "replace").strip()[:300]
            if error.status in (401, 403):
                raise ConfigurationError(
                    f"TAMS_VAST_MANAGEMENT_USERNAME / TAMS_VAST_MANAGEMENT_PASSWORD: VMS at {self.address} refused "
                    f"them ({error.status} {detail})"
                ) from None
            raise ConfigurationError(
                f"TAMS_VAST_BUCKET_OWNER / TAMS_VAST_VIEW_POLICY: VMS at {self.address} answered {error.method} "
                f"{error.url} with {error.status} {detail} (bucket owner {self.bucket_owner!r}, view policy "
                f"{self.view_policy!r})"
            ) from None
        except urllib3.exceptions.HTTPError as error:
            raise ConfigurationError(
                f"TAMS_VAST_MANAGEMENT_ENDPOINT: cannot reach VMS at {self.address} ({type(error).__name__})"
            ) from None


def vms_address(endpoint: str) -> str:
    """vastpy's `address` (host[:port]) from a setting that may be an https:// URL; it speaks HTTPS only."""
    if endpoint.startswith("http://"):
        raise ConfigurationError(f"TAMS_VAST_MANAGEMENT_ENDPOINT: {endpoint}: VMS is reached over HTTPS only")
    return endpoint.removeprefix("https://").rstrip("/")


def _matching(found: Any, field: str, value: str) -> list[dict[str, Any]]:
    """Entries of a VMS listing whose `field` is `value` (the query filters too; this does not rely on it)."""
    return [entry for entry in found or [] if entry.get(field) == value]
