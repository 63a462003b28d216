"""Authentication and scopes.

Modes (any combination, `TAMS_AUTH_MODES`): `basic` (users and passwords), `token` (static bearer tokens),
`jwt` (bearer JWTs verified against a JWKS, issuer and audience). With no mode, every request is allowed:
the default for `make run` on loopback. Credentials come from settings or files (Kubernetes Secrets), and
the `access_token` query parameter is accepted only when enabled.

Scopes follow the TAMS recommendation: `tams-api/read` (GET, HEAD), `tams-api/write` (POST, PUT),
`tams-api/delete` (DELETE), `tams-api/admin` (service administration; implies all). A credential without
scopes may do everything unless strict scopes are on. The operator managing a store gets its own admin
token (`TAMS_AUTH_OPERATOR_TOKEN`), accepted whatever the modes, so webhooks and deletion requests filed as
Kubernetes objects reach the API without a user's credential.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import EXTENSION_PREFIX
from .config import Settings
from .errors import Forbidden, Unauthorized

if TYPE_CHECKING:
    import jwt

READ, WRITE, DELETE, ADMIN = "tams-api/read", "tams-api/write", "tams-api/delete", "tams-api/admin"
OPERATOR = "tams-operator"  # the name TAMS_AUTH_OPERATOR_TOKEN authenticates as
SCOPE_OF_METHOD = {"GET": READ, "HEAD": READ, "POST": WRITE, "PUT": WRITE, "DELETE": DELETE}
# Service administration needs the admin scope whatever the method.
ADMIN_ROUTES = {("POST", "/service"), ("GET", "/flow-delete-requests"), ("HEAD", "/flow-delete-requests")}
# Soft-deleted flows (extension) are seen and restored by whoever may delete flows.
DELETE_SCOPE_ROUTES = re.compile(rf"^{EXTENSION_PREFIX}/(deleted-flows|flows/[^/]+/restore)$")


def required_scope(method: str, path: str) -> str:
    if (method, path) in ADMIN_ROUTES:
        return ADMIN
    if DELETE_SCOPE_ROUTES.match(path):
        return DELETE
    return SCOPE_OF_METHOD.get(method, ADMIN)


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scopes: frozenset[str] | None = None  # None: the credential carries no scopes

    def may(self, scope: str, strict: bool) -> bool:
        if self.scopes is None:
            return not strict
        return scope in self.scopes or ADMIN in self.scopes


ANONYMOUS = Principal("anonymous")


def parse_credentials(text: str) -> dict[str, tuple[str, frozenset[str] | None]]:
    """`NAME SECRET [SCOPE,SCOPE]` entries, one per line (or separated by `;`) -> secret by name."""
    entries: dict[str, tuple[str, frozenset[str] | None]] = {}
    for line in text.replace(";", "\n").splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) not in (2, 3):
            raise ValueError("credential entries are 'NAME SECRET [SCOPE,SCOPE]'")
        scopes = frozenset(fields[2].split(",")) if len(fields) == 3 else None
        entries[fields[0]] = (fields[1], scopes)
    return entries


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(slots=True)
class JwtVerifier:
    keys: jwt.PyJWKClient | jwt.PyJWKSet
    issuer: str | None
    audience: str | None
    algorithms: list[str]

    def verify(self, token: str) -> Principal:
        import jwt  # imported in jwt mode only (see authenticator_from_settings): already loaded, a dict lookup

        try:
            if isinstance(self.keys, jwt.PyJWKClient):
                key = self.keys.get_signing_key_from_jwt(token).key
            else:
                key_id = jwt.get_unverified_header(token).get("kid")
                key = next(k.key for k in self.keys.keys if key_id is None or k.key_id == key_id)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except (jwt.PyJWTError, StopIteration) as error:
            raise Unauthorized(f"invalid bearer token: {error or 'no matching signing key'}") from None
        scope = claims.get("scope", claims.get("scp"))
        scopes = frozenset(scope.split() if isinstance(scope, str) else scope) if scope else None
        return Principal(str(claims.get("sub") or claims.get("client_id") or "jwt"), scopes)


class Authenticator:
    def __init__(
        self,
        modes: set[str],
        users: dict[str, tuple[str, frozenset[str] | None]],
        tokens: dict[str, tuple[str, frozenset[str] | None]],
        jwt_verifier: JwtVerifier | None,
        access_token_query: bool,
        strict_scopes: bool,
    ) -> None:
        self.modes = modes
        self._users = {name: (_digest(password), scopes) for name, (password, scopes) in users.items()}
        # Tokens are looked up by digest, so no secret is compared byte by byte.
        self._tokens = {_digest(token): Principal(name, scopes) for name, (token, scopes) in tokens.items()}
        self._jwt = jwt_verifier
        self.access_token_query = access_token_query
        self.strict_scopes = strict_scopes

    @property
    def enabled(self) -> bool:
        return bool(self.modes)

    def challenge(self) -> str:
        schemes = (['Basic realm="tams"'] if "basic" in self.modes else []) + (
            ['Bearer realm="tams"'] if self.modes & {"token", "jwt"} else []
        )
        return ", ".join(schemes)

    def authenticate(self, authorization: str | None, access_token: str | None) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        if authorization is None and access_token is not None and self.access_token_query:
            authorization = f"Bearer {access_token}"
        if not authorization:
            raise Unauthorized("authentication required")
        scheme, _, credentials = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and "basic" in self.modes:
            return self._basic(credentials.strip())
        if scheme == "bearer" and (self._tokens or self._jwt is not None):
            return self._bearer(credentials.strip())
        raise Unauthorized(f"unsupported authorization scheme {scheme!r}")

    def _basic(self, credentials: str) -> Principal:
        try:
            user, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise Unauthorized("malformed basic credentials") from None
        known = self._users.get(user)
        # Compare against a digest even for unknown users, so timing does not tell which users exist.
        expected, scopes = known if known is not None else (_digest(""), None)
        if not hmac.compare_digest(expected, _digest(password)) or known is None:
            raise Unauthorized("wrong user name or password")
        return Principal(user, scopes)

    def _bearer(self, token: str) -> Principal:
        principal = self._tokens.get(_digest(token))
        if principal is not None:
            return principal
        if self._jwt is not None and token.count(".") == 2:
            return self._jwt.verify(token)
        raise Unauthorized("unknown bearer token")

    def authorize(self, principal: Principal, scope: str) -> None:
        if self.enabled and not principal.may(scope, self.strict_scopes):
            raise Forbidden(f"{principal.name} lacks the scope {scope}")


def _read_secret(value: str | None, file: Path | None) -> str:
    """A setting given inline or as a file (e.g. a mounted Kubernetes Secret)."""
    return file.read_text() if file is not None else value or ""


def authenticator_from_settings(settings: Settings) -> Authenticator:
    verifier = None
    if "jwt" in settings.auth_mode_set:
        import jwt  # PyJWT and cryptography cost ~9 MB resident: only when JWTs are accepted

        keys: jwt.PyJWKClient | jwt.PyJWKSet
        if settings.auth_jwks_file is not None:
            keys = jwt.PyJWKSet.from_json(settings.auth_jwks_file.read_text())
        else:
            keys = jwt.PyJWKClient(str(settings.auth_jwks_url), cache_keys=True)
        verifier = JwtVerifier(
            keys=keys,
            issuer=settings.auth_jwt_issuer,
            audience=settings.auth_jwt_audience,
            algorithms=[name.strip() for name in settings.auth_jwt_algorithms.split(",") if name.strip()],
        )
    tokens: dict[str, tuple[str, frozenset[str] | None]] = {}
    if "token" in settings.auth_mode_set:
        tokens = parse_credentials(_read_secret(settings.auth_tokens, settings.auth_tokens_file))
    if settings.auth_operator_token:
        tokens[OPERATOR] = (settings.auth_operator_token, frozenset({ADMIN}))
    return Authenticator(
        modes=settings.auth_mode_set,
        users=parse_credentials(_read_secret(settings.auth_users, settings.auth_users_file)),
        tokens=tokens,
        jwt_verifier=verifier,
        access_token_query=settings.auth_access_token_query,
        strict_scopes=settings.auth_strict_scopes,
    )
