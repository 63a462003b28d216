"""The authenticator: each mode, wrong credentials, expired and mis-addressed JWTs, and scopes."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tams_api.auth import (
    ADMIN,
    DELETE,
    OPERATOR,
    READ,
    WRITE,
    Authenticator,
    JwtVerifier,
    Principal,
    authenticator_from_settings,
    parse_credentials,
)
from tams_api.config import Settings
from tams_api.errors import Forbidden, Unauthorized

ISSUER = "https://idp.example"
AUDIENCE = "tams"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def verifier(signing_key: rsa.RSAPrivateKey) -> JwtVerifier:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    keys = jwt.PyJWKSet.from_dict({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]})
    return JwtVerifier(keys=keys, issuer=ISSUER, audience=AUDIENCE, algorithms=["RS256"])


def token(key: rsa.RSAPrivateKey, **claims: object) -> str:
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "ingest", "exp": int(time.time()) + 60, **claims}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def authenticator(verifier: JwtVerifier | None = None, **overrides: object) -> Authenticator:
    options: dict = {
        "modes": {"basic", "token", "jwt"},
        "users": parse_credentials("alice s3cret; bob hunter2 tams-api/read"),
        "tokens": parse_credentials("robot tok-123 tams-api/read,tams-api/write"),
        "jwt_verifier": verifier,
        "access_token_query": False,
        "strict_scopes": False,
    }
    options.update(overrides)
    return Authenticator(**options)


def test_no_mode_lets_everyone_in() -> None:
    auth = authenticator(modes=set())
    assert auth.authenticate(None, None).name == "anonymous"
    auth.authorize(auth.authenticate(None, None), ADMIN)


def test_basic(verifier: JwtVerifier) -> None:
    auth = authenticator(verifier)
    assert auth.authenticate(basic("alice", "s3cret"), None) == Principal("alice", None)
    for wrong in (basic("alice", "nope"), basic("mallory", "s3cret"), "Basic !!!", basic("alice", "")):
        with pytest.raises(Unauthorized):
            auth.authenticate(wrong, None)


def test_static_token_and_query_parameter(verifier: JwtVerifier) -> None:
    auth = authenticator(verifier)
    assert auth.authenticate("Bearer tok-123", None).name == "robot"
    with pytest.raises(Unauthorized):
        auth.authenticate("Bearer tok-124", None)
    with pytest.raises(Unauthorized):
        auth.authenticate(None, "tok-123")  # the query token is off unless enabled
    assert authenticator(verifier, access_token_query=True).authenticate(None, "tok-123").name == "robot"


def test_jwt(signing_key: rsa.RSAPrivateKey, verifier: JwtVerifier) -> None:
    auth = authenticator(verifier)
    principal = auth.authenticate("Bearer " + token(signing_key, scope="tams-api/read tams-api/write"), None)
    assert principal == Principal("ingest", frozenset({READ, WRITE}))


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 10},  # expired
        {"aud": "someone-else"},
        {"iss": "https://evil.example"},
    ],
)
def test_jwt_refused(signing_key: rsa.RSAPrivateKey, verifier: JwtVerifier, claims: dict) -> None:
    with pytest.raises(Unauthorized):
        authenticator(verifier).authenticate("Bearer " + token(signing_key, **claims), None)


def test_jwt_signed_by_another_key(verifier: JwtVerifier) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Unauthorized):
        authenticator(verifier).authenticate("Bearer " + token(stranger), None)


def test_scopes() -> None:
    auth = authenticator()
    reader = auth.authenticate(basic("bob", "hunter2"), None)
    auth.authorize(reader, READ)
    with pytest.raises(Forbidden):
        auth.authorize(reader, WRITE)
    unscoped = auth.authenticate(basic("alice", "s3cret"), None)
    auth.authorize(unscoped, DELETE)  # unscoped credentials keep working...
    with pytest.raises(Forbidden):
        authenticator(strict_scopes=True).authorize(unscoped, DELETE)  # ...unless strict mode is on
    auth.authorize(Principal("root", frozenset({ADMIN})), DELETE)


def test_missing_credentials_and_unknown_scheme() -> None:
    auth = authenticator()
    with pytest.raises(Unauthorized):
        auth.authenticate(None, None)
    with pytest.raises(Unauthorized):
        auth.authenticate("Digest abc", None)


def test_the_operator_token_is_an_admin_whatever_the_modes() -> None:
    settings = Settings(
        auth_modes="basic",
        auth_users="alice s3cret",
        auth_tokens="robot tok-123",  # ignored: token mode is off
        auth_operator_token="op-456",
    )
    auth = authenticator_from_settings(settings)
    operator = auth.authenticate("Bearer op-456", None)
    assert operator == Principal(OPERATOR, frozenset({ADMIN}))
    auth.authorize(operator, ADMIN)
    with pytest.raises(Unauthorized):
        auth.authenticate("Bearer tok-123", None)
    assert auth.authenticate(basic("alice", "s3cret"), None).name == "alice"
    with pytest.raises(Unauthorized):
        authenticator_from_settings(Settings(auth_modes="basic", auth_users="alice s3cret")).authenticate(
            "Bearer op-456", None
        )
