"""Ed25519 package signatures: keys, signing, and every way a signature is refused."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from cloacina.errors import PackageError, SignatureError
from cloacina.packaging.signing import (
    generate_keypair,
    key_fingerprint,
    load_trusted_keys,
    sign_archive,
    verify_signature,
    write_keypair,
)

DATA = b"the bytes of a .cloacina archive"


def test_keypair_round_trip(tmp_path: Path) -> None:
    pair = generate_keypair()
    private, public = write_keypair(pair, tmp_path / "keys", "team")
    assert private == tmp_path / "keys" / "team.key"
    assert public == tmp_path / "keys" / "team.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes() == pair.private_pem
    assert public.read_bytes() == pair.public_pem
    assert key_fingerprint(public.read_bytes()) == pair.fingerprint
    assert pair.fingerprint.startswith("SHA256:") and len(pair.fingerprint) == 7 + 32
    # the private key read back from its file signs what the public key verifies
    sig = sign_archive(DATA, private.read_bytes())
    assert verify_signature(DATA, sig, load_trusted_keys([public])) == pair.fingerprint


def test_write_keypair_refuses_to_overwrite(tmp_path: Path) -> None:
    write_keypair(generate_keypair(), tmp_path, "team")
    with pytest.raises(PackageError, match="already exists"):
        write_keypair(generate_keypair(), tmp_path, "team")


def test_two_keypairs_differ() -> None:
    assert generate_keypair().fingerprint != generate_keypair().fingerprint


def test_sign_and_verify() -> None:
    pair = generate_keypair()
    sig = sign_archive(DATA, pair.private_pem)
    doc = json.loads(sig)
    assert doc["algorithm"] == "ed25519"
    assert doc["key"] == pair.fingerprint
    assert verify_signature(DATA, sig, {pair.fingerprint: pair.public_pem}) == pair.fingerprint


def test_signing_is_deterministic() -> None:
    pair = generate_keypair()
    assert sign_archive(DATA, pair.private_pem) == sign_archive(DATA, pair.private_pem)


@pytest.mark.parametrize("position", [0, len(DATA) // 2, len(DATA) - 1])
def test_a_tampered_byte_fails(position: int) -> None:
    pair = generate_keypair()
    sig = sign_archive(DATA, pair.private_pem)
    tampered = bytearray(DATA)
    tampered[position] ^= 0x01
    with pytest.raises(SignatureError, match="different package bytes"):
        verify_signature(bytes(tampered), sig, {pair.fingerprint: pair.public_pem})


def test_a_forged_signature_fails() -> None:
    """The hash is right and the key trusted, but the signature bytes are not the key's."""
    pair, other = generate_keypair(), generate_keypair()
    doc = json.loads(sign_archive(DATA, other.private_pem))
    doc["key"] = pair.fingerprint  # claim to be the trusted signer
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signature(DATA, json.dumps(doc).encode(), {pair.fingerprint: pair.public_pem})
    raw = bytearray(base64.b64decode(json.loads(sign_archive(DATA, pair.private_pem))["signature"]))
    raw[0] ^= 0xFF
    doc = json.loads(sign_archive(DATA, pair.private_pem))
    doc["signature"] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signature(DATA, json.dumps(doc).encode(), {pair.fingerprint: pair.public_pem})


def test_an_untrusted_key_fails() -> None:
    signer, trusted = generate_keypair(), generate_keypair()
    sig = sign_archive(DATA, signer.private_pem)
    with pytest.raises(SignatureError, match="not among the trusted keys"):
        verify_signature(DATA, sig, {trusted.fingerprint: trusted.public_pem})
    with pytest.raises(SignatureError, match="not among the trusted keys"):
        verify_signature(DATA, sig, {})


def test_a_missing_signature_fails() -> None:
    pair = generate_keypair()
    for missing in (None, b""):
        with pytest.raises(SignatureError, match="not signed"):
            verify_signature(DATA, missing, {pair.fingerprint: pair.public_pem})


@pytest.mark.parametrize(
    "mangle",
    [
        lambda doc: b"not json at all",
        lambda doc: b"\xff\xfe binary",
        lambda doc: json.dumps([1, 2]).encode(),
        lambda doc: json.dumps({k: v for k, v in doc.items() if k != "signature"}).encode(),
        lambda doc: json.dumps({k: v for k, v in doc.items() if k != "sha256"}).encode(),
        lambda doc: json.dumps({**doc, "signature": "!!! not base64 !!!"}).encode(),
        lambda doc: json.dumps({**doc, "algorithm": "rsa"}).encode(),
        lambda doc: json.dumps({**doc, "key": ["a", "list"]}).encode(),
    ],
)
def test_a_malformed_signature_fails(mangle: object) -> None:
    pair = generate_keypair()
    doc = json.loads(sign_archive(DATA, pair.private_pem))
    bad = mangle(doc)  # type: ignore[operator]
    with pytest.raises(SignatureError):
        verify_signature(DATA, bad, {pair.fingerprint: pair.public_pem})


def test_signing_with_a_bad_key_fails() -> None:
    with pytest.raises(SignatureError, match="private key"):
        sign_archive(DATA, b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SignatureError):
        sign_archive(DATA, generate_keypair().public_pem)


def test_load_trusted_keys_from_files_dirs_and_text(tmp_path: Path) -> None:
    a, b, c = generate_keypair(), generate_keypair(), generate_keypair()
    write_keypair(a, tmp_path / "dir", "a")
    write_keypair(b, tmp_path / "dir", "b")
    single = tmp_path / "c.pub"
    single.write_bytes(c.public_pem)
    keys = load_trusted_keys([tmp_path / "dir", str(single), c.public_pem.decode()])
    assert set(keys) == {a.fingerprint, b.fingerprint, c.fingerprint}
    assert keys[a.fingerprint] == a.public_pem


def test_load_trusted_keys_refuses_missing_and_non_keys(tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="does not exist"):
        load_trusted_keys([tmp_path / "missing.pub"])
    junk = tmp_path / "junk.pub"
    junk.write_text("hello")
    with pytest.raises(SignatureError, match="not an Ed25519 public key"):
        load_trusted_keys([junk])
    with pytest.raises(SignatureError):
        key_fingerprint(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
