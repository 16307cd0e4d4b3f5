"""JWT checks (sshgate.auth.tokens) with tokens made by pyjwt and keys made by cryptography."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sshgate.auth.base import AuthRejected, AuthRequest
from sshgate.auth.tokens import TokenAuthenticator, TokenSettings

ISSUER, AUDIENCE = "https://idp.example.org", "sshgate"
SECRET = "0123456789abcdef0123456789abcdef-hmac"


class Issuer:
    def __init__(self, directory: Path) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa_pem = directory / "rsa.pem"
        self.rsa_pem.write_bytes(
            self.rsa.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.jwks = directory / "jwks.json"
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        self.jwks.write_text(json.dumps({"keys": [{**ec_jwk, "kid": "ec-1", "use": "sig", "alg": "ES256"}]}))
        self.secret = directory / "hmac"
        self.secret.write_text(SECRET + "\n")

    def token(
        self, key: Any = None, algorithm: str = "RS256", headers: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key if key is not None else self.rsa, algorithm=algorithm, headers=headers)


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Issuer:
    return Issuer(tmp_path_factory.mktemp("jwt"))


def authenticator(issuer: Issuer, **options: Any) -> TokenAuthenticator:
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "public_key_files": [str(issuer.rsa_pem)],
        "jwks_file": str(issuer.jwks),
        "algorithms": ["RS256", "ES256"],
        **options,
    }
    return TokenAuthenticator(
        TokenSettings.model_validate(values), lambda name: ["from-config"] if name == "alice" else []
    )


async def check(auth: TokenAuthenticator, token: str, user: str | None = "alice") -> str:
    try:
        identity = await auth.check_password(
            AuthRequest(f"{user}+default/web-0", user, ("127.0.0.1", 1)), token
        )
    except AuthRejected as exc:
        return f"rejected: {exc}"
    return f"{identity.name} {','.join(identity.groups)}"


async def test_valid_tokens(issuer: Issuer) -> None:
    auth = authenticator(issuer)
    assert await check(auth, issuer.token(groups=["devs", "with space"])) == "alice devs,from-config"
    assert await check(auth, issuer.token(issuer.ec, "ES256", {"kid": "ec-1"})) == "alice from-config"
    assert await check(auth, issuer.token(), user=None) == "alice from-config"
    custom = authenticator(issuer, username_claim="preferred_username", groups_claim="roles")
    token = issuer.token(preferred_username="bob", roles="ops")
    assert await check(custom, token, user="bob") == "bob ops"


async def test_forged_and_foreign_tokens(issuer: Issuer) -> None:
    auth = authenticator(issuer)
    assert await check(auth, issuer.token(issuer.other)) == "rejected: no key verified the token"
    header, body, signature = issuer.token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["sub"] = "root"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert (
        await check(auth, f"{header}.{forged}.{signature}", user="root")
        == "rejected: no key verified the token"
    )
    assert await check(auth, issuer.token(sub="bob")) == "rejected: the token is for 'bob', not for 'alice'"
    assert await check(auth, "S3cret!pw") == "rejected: not a JWT"


async def test_alg_none_and_hs_rs_confusion(issuer: Issuer) -> None:
    auth = authenticator(issuer)
    unsigned = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": int(time.time()) + 60}, None, algorithm="none"
    )
    assert await check(auth, unsigned) == "rejected: token algorithm 'none' is not allowed"
    # The public key used as an HMAC secret: refused by algorithm, and keys are bound to their family.
    pem = issuer.rsa_pem.read_bytes()
    hs = jwt.api_jws.PyJWS()
    confused = hs.encode(
        json.dumps(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": "alice",
                "iat": int(time.time()),
                "exp": int(time.time()) + 60,
            }
        ).encode(),
        b"x" * 32,
        algorithm="HS256",
    )
    assert await check(auth, confused) == "rejected: token algorithm 'HS256' is not allowed"
    both = authenticator(issuer, algorithms=["RS256", "HS256"], hmac_secret_file=str(issuer.secret))
    import hashlib
    import hmac as hmac_module

    signing_input = confused.rsplit(".", 1)[0].encode()
    with_pem = base64.urlsafe_b64encode(hmac_module.new(pem, signing_input, hashlib.sha256).digest()).rstrip(
        b"="
    )
    assert (
        await check(both, f"{signing_input.decode()}.{with_pem.decode()}")
        == "rejected: no key verified the token"
    )
    assert await check(both, issuer.token(SECRET.encode(), "HS256")) == "alice from-config"


async def test_time_claims_with_leeway(issuer: Issuer) -> None:
    auth = authenticator(issuer, leeway=30)
    now = int(time.time())
    assert "Signature has expired" in await check(auth, issuer.token(exp=now - 60))
    assert await check(auth, issuer.token(exp=now - 10)) == "alice from-config"
    assert "not yet valid" in await check(auth, issuer.token(nbf=now + 120))
    assert await check(auth, issuer.token(nbf=now + 10)) == "alice from-config"
    assert 'missing the "exp" claim' in await check(auth, issuer.token(exp=None))


async def test_wrong_audience_and_issuer(issuer: Issuer) -> None:
    auth = authenticator(issuer)
    assert (
        await check(auth, issuer.token(aud="another-app"))
        == "rejected: invalid token: Audience doesn't match"
    )
    assert (
        await check(auth, issuer.token(iss="https://evil.example"))
        == "rejected: invalid token: Invalid issuer"
    )


def test_settings_errors(issuer: Issuer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="algorithm 'none' is not allowed"):
        TokenSettings(
            issuer=ISSUER, audience=AUDIENCE, algorithms=["none"], public_key_files=[issuer.rsa_pem]
        )
    with pytest.raises(ValueError, match="give the issuer's keys"):
        TokenSettings(issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ValueError, match="no hmac_secret_file"):
        TokenSettings(issuer=ISSUER, audience=AUDIENCE, algorithms=["HS256"])
    short = tmp_path / "short"
    short.write_text("tiny\n")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenSettings(issuer=ISSUER, audience=AUDIENCE, algorithms=["HS256"], hmac_secret_file=short)
    with pytest.raises(ValueError, match="not a PEM public key"):
        TokenSettings(issuer=ISSUER, audience=AUDIENCE, public_key_files=[short])
