"""Admin authorisation: EdDSA and ES256 admin keys, roles against permissions, and every refusal."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from kbs.admin_auth import ROLES, AdminAuthority, Permission, mint_token
from kbs.errors import KbsError


@pytest.mark.parametrize(
    "make_key", [ed25519.Ed25519PrivateKey.generate, lambda: ec.generate_private_key(ec.SECP256R1())]
)
def test_admin_keys_of_both_kinds(make_key: object) -> None:
    key = make_key()  # type: ignore[operator]
    authority = AdminAuthority([key.public_key()])
    identity = authority.authorise(f"Bearer {mint_token(key, ttl_seconds=60)}", Permission.RESOURCE_WRITE)
    assert identity.role == "admin"


def test_no_keys_means_admin_off() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(KbsError) as info:
        AdminAuthority([]).authorise(f"Bearer {mint_token(key, ttl_seconds=60)}", Permission.AUDIT_READ)
    assert info.value.status == 403
    assert "disabled" in info.value.detail


@pytest.mark.parametrize(
    ("header", "status", "detail"),
    [
        (None, 401, "Bearer"),
        ("Basic abc", 401, "Bearer"),
        ("Bearer not-a-jwt", 401, "rejected"),
    ],
)
def test_bad_headers(header: str | None, status: int, detail: str) -> None:
    authority = AdminAuthority([ed25519.Ed25519PrivateKey.generate().public_key()])
    with pytest.raises(KbsError) as info:
        authority.authorise(header, Permission.AUDIT_READ)
    assert info.value.status == status
    assert detail in info.value.detail


def test_roles_limit_permissions() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    authority = AdminAuthority([key.public_key()])
    for role, permissions in ROLES.items():
        token = f"Bearer {mint_token(key, role=role, ttl_seconds=60)}"
        for permission in Permission:
            if permission in permissions:
                assert authority.authorise(token, permission).role == role
            else:
                with pytest.raises(KbsError) as info:
                    authority.authorise(token, permission)
                assert info.value.status == 403


def test_unknown_role_and_wrong_audience() -> None:
    import jwt

    key = ed25519.Ed25519PrivateKey.generate()
    authority = AdminAuthority([key.public_key()])
    forged_role = jwt.encode(
        {"role": "root", "aud": "veritee-kbs-admin", "iat": 0, "exp": 2**40}, key, algorithm="EdDSA"
    )
    with pytest.raises(KbsError) as info:
        authority.authorise(f"Bearer {forged_role}", Permission.AUDIT_READ)
    assert info.value.status == 403
    other_audience = jwt.encode({"role": "admin", "aud": "elsewhere", "iat": 0, "exp": 2**40}, key, algorithm="EdDSA")
    with pytest.raises(KbsError) as info:
        authority.authorise(f"Bearer {other_audience}", Permission.AUDIT_READ)
    assert info.value.status == 401


def test_hs256_with_public_key_is_refused() -> None:
    """The classic algorithm-confusion forgery: an HMAC token keyed with the public key."""
    import jwt
    from cryptography.hazmat.primitives import serialization

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = jwt.api_jws.PyJWS().encode(
        b'{"role":"admin","aud":"veritee-kbs-admin","iat":0,"exp":1099511627776}', pem[:32], algorithm="HS256"
    )
    with pytest.raises(KbsError):
        AdminAuthority([key.public_key()]).authorise(f"Bearer {forged}", Permission.RESOURCE_WRITE)


def test_rsa_admin_keys_refused(tmp_path: object) -> None:
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization

    path = Path(str(tmp_path)) / "rsa.pem"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(TypeError, match="Ed25519 or P-256"):
        AdminAuthority.from_files([path])
