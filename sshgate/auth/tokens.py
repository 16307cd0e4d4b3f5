"""JSON Web Tokens given as the SSH password (or keyboard-interactive answer), checked with pyjwt.

A token is accepted when its signature verifies with a configured key, its algorithm is on the
allow-list, and issuer, audience, expiry and not-before hold (with ``leeway`` for clock skew). Keys
are bound to their algorithm family: an ``HS*`` token is only ever checked with the HMAC secret,
any other only with the public keys, so a public key can never serve as an HMAC secret (the
classic RS/HS confusion), and ``none`` is never accepted. The user name and groups come from
configurable claims.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sshgate.auth.base import Authenticator, AuthRejected, AuthRequest
from sshgate.auth.settings import GROUP_NAME, USER_NAME, Seconds, resolve_path
from sshgate.identity import Identity

_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_HMAC = frozenset({"HS256", "HS384", "HS512"})
_ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MAX_TOKEN_BYTES = 16384


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


class TokenSettings(BaseModel):
    """The ``tokens`` section of ``gate.yaml``."""

    model_config = ConfigDict(extra="forbid")

    #: The ``iss`` every token must carry.
    issuer: str
    #: The ``aud`` every token must carry (the gate's name at the issuer).
    audience: str
    #: Signature algorithms accepted; ``none`` is never accepted.
    algorithms: list[str] = Field(["RS256", "ES256", "EdDSA"], min_length=1)
    #: PEM files of the issuer's public keys (RSA, EC, Ed25519).
    public_key_files: list[Path] = []
    #: A JWKS file (``{"keys": [...]}``); tokens pick a key by ``kid``.
    jwks_file: Path | None = None
    #: A file holding the shared secret for ``HS*`` algorithms (first line).
    hmac_secret_file: Path | None = None
    #: Clock-skew allowance for ``exp``, ``nbf`` and ``iat``.
    leeway: Seconds = 30.0
    #: Claims that must be present.
    required_claims: list[str] = ["exp", "iat"]
    #: The claim holding the user name, and the one holding a list of groups (None: no groups).
    username_claim: str = "sub"
    groups_claim: str | None = "groups"
    _public_keys: list[Any] = PrivateAttr(default_factory=list)
    _jwks: dict[str, Any] = PrivateAttr(default_factory=dict)
    _hmac_secret: bytes | None = PrivateAttr(default=None)

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in _HMAC | _ASYMMETRIC:
                raise ValueError(
                    f"algorithm {name!r} is not allowed: use some of {', '.join(sorted(_HMAC | _ASYMMETRIC))}"
                )
        return value

    @field_validator("public_key_files")
    @classmethod
    def _pem_paths(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        return [resolve_path(p, info) for p in value]

    @field_validator("jwks_file", "hmac_secret_file")
    @classmethod
    def _path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_path(value, info)

    @model_validator(mode="after")
    def _load_keys(self) -> TokenSettings:
        for path in self.public_key_files:
            try:
                self._public_keys.append(serialization.load_pem_public_key(_read(path).encode()))
            except (ValueError, TypeError, UnsupportedAlgorithm):
                raise ValueError(f"{path} is not a PEM public key") from None
        if self.jwks_file is not None:
            try:
                keyset = jwt.PyJWKSet.from_json(_read(self.jwks_file))
            except (jwt.exceptions.PyJWKSetError, json.JSONDecodeError) as exc:
                raise ValueError(f"{self.jwks_file} is not a usable JWKS file: {exc}") from None
            self._jwks = {k.key_id or "": k.key for k in keyset.keys}
        if self.hmac_secret_file is not None:
            lines = _read(self.hmac_secret_file).splitlines()
            secret = lines[0].encode() if lines else b""
            if len(secret) < 32:
                raise ValueError(f"the HMAC secret in {self.hmac_secret_file} must be at least 32 bytes")
            self._hmac_secret = secret
        wants_hmac = bool(set(self.algorithms) & _HMAC)
        wants_keys = bool(set(self.algorithms) & _ASYMMETRIC)
        if wants_hmac and self._hmac_secret is None:
            raise ValueError("an HS* algorithm is allowed but no hmac_secret_file is given")
        if wants_keys and not (self._public_keys or self._jwks):
            raise ValueError("give the issuer's keys: public_key_files or jwks_file")
        return self

    def keys_for(self, algorithm: str, kid: str | None) -> list[Any]:
        """The keys a token signed with ``algorithm`` (and ``kid``) may be checked with."""
        if algorithm in _HMAC:
            return [self._hmac_secret] if self._hmac_secret is not None else []
        if kid is not None and kid in self._jwks:
            return [self._jwks[kid]]
        return list(self._public_keys) + ([] if kid is not None else list(self._jwks.values()))


class TokenAuthenticator(Authenticator):
    """Accepts a signed JWT as the password."""

    name = "token"
    ssh_method = "password"

    def __init__(
        self, settings: TokenSettings, groups_of: Callable[[str], Sequence[str]] = lambda _: ()
    ) -> None:
        self.settings = settings
        self._groups_of = groups_of

    async def check_password(self, request: AuthRequest, password: str) -> Identity:
        token = password.strip()
        if len(token) > MAX_TOKEN_BYTES or not _JWT_SHAPE.fullmatch(token):
            raise AuthRejected("not a JWT")
        claims = self._verify(token)
        name = claims.get(self.settings.username_claim)
        if not isinstance(name, str) or not USER_NAME.fullmatch(name):
            raise AuthRejected(f"the token's {self.settings.username_claim!r} claim is not a valid user name")
        if request.user is not None and request.user != name:
            raise AuthRejected(f"the token is for {name!r}, not for {request.user!r}")
        groups = self._groups(claims)
        attributes = {"token_issuer": str(claims.get("iss")), "token_subject": str(claims.get("sub"))}
        if "jti" in claims:
            attributes["token_id"] = str(claims["jti"])
        return Identity(
            name=name,
            groups=tuple(dict.fromkeys([*groups, *self._groups_of(name)])),
            method="token",
            attributes=attributes,
        )

    def _verify(self, token: str) -> dict[str, Any]:
        settings = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.exceptions.InvalidTokenError:
            raise AuthRejected("not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in settings.algorithms:
            raise AuthRejected(f"token algorithm {algorithm!r} is not allowed")
        kid = header.get("kid")
        keys = settings.keys_for(algorithm, kid if isinstance(kid, str) else None)
        if not keys:
            raise AuthRejected(f"no key for a {algorithm} token" + (f" with kid {kid!r}" if kid else ""))
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=settings.audience,
                    issuer=settings.issuer,
                    leeway=settings.leeway,
                    options={"require": settings.required_claims, "verify_signature": True},
                )
                return claims
            except (jwt.exceptions.InvalidSignatureError, jwt.exceptions.InvalidKeyError, TypeError):
                continue  # another key (or a key of another type, which pyjwt reports as TypeError)
            except jwt.exceptions.InvalidTokenError as exc:
                raise AuthRejected(f"invalid token: {exc}") from None
        raise AuthRejected("no key verified the token")

    def _groups(self, claims: dict[str, Any]) -> list[str]:
        claim = self.settings.groups_claim
        if claim is None or claim not in claims:
            return []
        value = claims[claim]
        values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        return [g for g in values if isinstance(g, str) and GROUP_NAME.fullmatch(g)]
