"""AWS Signature Version 4 presigned URLs for S3, without botocore's per-URL machinery.

A listing of 300 segments asks for 300 presigned GET URLs; botocore builds each through its request and
event layers (about 100-200 µs), which would dominate the listing. This signer does only the arithmetic of
the SigV4 query-string algorithm (about 10 µs) and caches the day's signing key. A test checks its URLs
against botocore's for the same inputs, and the S3 tests prove a real S3 server accepts them.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _quote(value: str) -> str:
    """RFC 3986 percent-encoding, as SigV4 wants it: everything but unreserved characters."""
    return quote(value, safe="-_.~")


class Presigner:
    """Presigns path-style (`endpoint/bucket/key`) or virtual-hosted (`bucket.endpoint/key`) S3 URLs."""

    def __init__(self, endpoint_url: str, region: str, bucket: str, virtual_hosted: bool) -> None:
        parts = urlsplit(endpoint_url)
        self.scheme = parts.scheme
        self.host = f"{bucket}.{parts.netloc}" if virtual_hosted else parts.netloc
        self.path_prefix = "/" if virtual_hosted else f"/{_quote(bucket)}/"
        self.region = region
        self._host_line = f"host:{self.host}\n"
        self._signing_keys: dict[tuple[str, str], bytes] = {}
        self._queries: dict[tuple[str, Credentials, int, str], tuple[str, str]] = {}

    def _signing_key(self, secret_key: str, date: str) -> bytes:
        key = self._signing_keys.get((secret_key, date))
        if key is None:
            key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), date), self.region), "s3"), "aws4_request")
            self._signing_keys = {(secret_key, date): key}  # keep only today's
        return key

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
        request must carry exactly that Content-Type (it is a signed header)."""
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
        signed_headers = "content-type;host" if content_type is not None else "host"
        canonical_query, scope = self._query(amz_date, credentials, expires_in, signed_headers)
        path = self.path_prefix + quote(key, safe="/-_.~")
        headers = f"content-type:{content_type}\nhost:{self.host}\n" if content_type is not None else self._host_line
        canonical_request = f"{method}\n{path}\n{canonical_query}\n{headers}\n{signed_headers}\nUNSIGNED-PAYLOAD"
        string_to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
        signing_key = self._signing_key(credentials.secret_key, amz_date[:8])
        signature = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        return f"{self.scheme}://{self.host}{path}?{canonical_query}&X-Amz-Signature={signature}"

    def _query(self, amz_date: str, credentials: Credentials, expires_in: int, signed_headers: str) -> tuple[str, str]:
        """The canonical query string and credential scope: the same for every URL signed in one second."""
        cache_key = (amz_date, credentials, expires_in, signed_headers)
        cached = self._queries.get(cache_key)
        if cached is not None:
            return cached
        scope = f"{amz_date[:8]}/{self.region}/s3/aws4_request"
        query = {
            "X-Amz-Algorithm": ALGORITHM,
            "X-Amz-Credential": f"{credentials.access_key}/{scope}",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": str(expires_in),
            "X-Amz-SignedHeaders": signed_headers,
        }
        if credentials.token:
            query["X-Amz-Security-Token"] = credentials.token
        canonical_query = "&".join(f"{_quote(name)}={_quote(value)}" for name, value in sorted(query.items()))
        if len(self._queries) > 16:
            self._queries.clear()
        self._queries[cache_key] = canonical_query, scope
        return canonical_query, scope
