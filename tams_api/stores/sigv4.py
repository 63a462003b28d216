"""AWS Signature Version 4 presigned URLs for S3, without botocore's per-URL machinery.

A listing of 300 segments asks for 300 presigned GET URLs; botocore builds each through its request and
event layers (several hundred µs), which would dominate the listing. This signer does only the arithmetic of
the SigV4 query-string algorithm, and prepares once per second what all URLs signed in that second share
(date, scope, canonical query, the keyed HMAC). A test checks its URLs against botocore's for the same
inputs, and the S3 tests prove a real S3 server accepts them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from .. import clock

ALGORITHM = "AWS4-HMAC-SHA256"
_UNRESERVED_PATH = re.compile(r"[A-Za-z0-9\-_.~/]*\Z")  # keys that need no percent-encoding (UUIDs, mostly)


@dataclass(frozen=True, slots=True, eq=False)  # compared and hashed by identity: one object per refresh
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _quote(value: str) -> str:
    """RFC 3986 percent-encoding, as SigV4 wants it: everything but unreserved characters."""
    return quote(value, safe="-_.~")


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What every URL signed in one second with the same credentials, expiry and headers shares."""

    amz_date: str
    scope: str
    canonical_query: str
    mac: hmac.HMAC  # keyed with the day's signing key; copied for each URL


class Presigner:
    """Presigns path-style (`endpoint/bucket/key`) or virtual-hosted (`bucket.endpoint/key`) S3 URLs."""

    def __init__(self, endpoint_url: str, region: str, bucket: str, virtual_hosted: bool) -> None:
        parts = urlsplit(endpoint_url)
        self.scheme = parts.scheme
        self.host = f"{bucket}.{parts.netloc}" if virtual_hosted else parts.netloc
        self.path_prefix = "/" if virtual_hosted else f"/{_quote(bucket)}/"
        self.region = region
        self._host_line = f"host:{self.host}\n"
        self._prepared: dict[tuple[int, Credentials, int, bool], _Prepared] = {}

    def url(
        self,
        method: str,
        key: str,
        credentials: Credentials,
        expires_in: int,
        content_type: str | None = None,
        now: float | None = None,
    ) -> str:
        """A URL allowing `method` on the object `key` for `expires_in` seconds; with `content_type`, the
        request must carry exactly that Content-Type (it is a signed header). Signed at `now`, by default the
        service's clock (what tests move to see URLs expire)."""
        second = int(clock.seconds() if now is None else now)
        prepared = self._prepared.get((second, credentials, expires_in, content_type is not None))
        if prepared is None:
            prepared = self._prepare(second, credentials, expires_in, content_type is not None)
        path = self.path_prefix + (key if _UNRESERVED_PATH.match(key) else quote(key, safe="/-_.~"))
        if content_type is None:
            headers, signed_headers = self._host_line, "host"
        else:
            headers, signed_headers = f"content-type:{content_type}\n{self._host_line}", "content-type;host"
        canonical_request = (
            f"{method}\n{path}\n{prepared.canonical_query}\n{headers}\n{signed_headers}\nUNSIGNED-PAYLOAD"
        )
        digest = hashlib.sha256(canonical_request.encode()).hexdigest()
        mac = prepared.mac.copy()
        mac.update(f"{ALGORITHM}\n{prepared.amz_date}\n{prepared.scope}\n{digest}".encode())
        return f"{self.scheme}://{self.host}{path}?{prepared.canonical_query}&X-Amz-Signature={mac.hexdigest()}"

    def _prepare(self, second: int, credentials: Credentials, expires_in: int, with_content_type: bool) -> _Prepared:
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        scope = f"{amz_date[:8]}/{self.region}/s3/aws4_request"
        query = {
            "X-Amz-Algorithm": ALGORITHM,
            "X-Amz-Credential": f"{credentials.access_key}/{scope}",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": str(expires_in),
            "X-Amz-SignedHeaders": "content-type;host" if with_content_type else "host",
        }
        if credentials.token:
            query["X-Amz-Security-Token"] = credentials.token
        canonical_query = "&".join(f"{_quote(name)}={_quote(value)}" for name, value in sorted(query.items()))
        signing_key = _hmac(
            _hmac(_hmac(_hmac(f"AWS4{credentials.secret_key}".encode(), amz_date[:8]), self.region), "s3"),
            "aws4_request",
        )
        prepared = _Prepared(amz_date, scope, canonical_query, hmac.new(signing_key, digestmod=hashlib.sha256))
        if len(self._prepared) >= 8:
            self._prepared.clear()
        self._prepared[(second, credentials, expires_in, with_content_type)] = prepared
        return prepared
