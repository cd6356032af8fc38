"""Ed25519 signatures of packages: a detached ``.sig`` file over the archive's SHA-256.

A ``.sig`` file is JSON: ``{"algorithm": "ed25519", "sha256": <archive hash>, "key":
<signer's key fingerprint>, "signature": <base64>}``. Keys are PEM files: ``NAME.key``
(private, mode 0600) and ``NAME.pub`` (public). A trust store is a list of public keys — PEM
text, ``.pub`` files, or directories of them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cloacina.errors import PackageError, SignatureError
from cloacina.packaging.archive import MAX_SMALL_FILE_BYTES, read_file_capped

ALGORITHM = "ed25519"
SIG_SUFFIX = ".sig"


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    public_pem: bytes

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.public_pem)


def generate_keypair() -> KeyPair:
    """A new Ed25519 key pair as PEM bytes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    return KeyPair(
        private_pem=private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        public_pem=private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def write_keypair(pair: KeyPair, directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (0600) and ``NAME.pub`` into ``directory``; refuses to overwrite."""
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    for path in (private, public):
        if path.exists():
            raise PackageError(f"{path} already exists; choose another --name or directory")
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pair.private_pem)
    public.write_bytes(pair.public_pem)
    return private, public


def key_fingerprint(public_pem: bytes) -> str:
    """``SHA256:<hex>`` of the raw public key: how a signer is named."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    try:
        key = serialization.load_pem_public_key(public_pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SignatureError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise SignatureError("not an Ed25519 public key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + hashlib.sha256(raw).hexdigest()[:32]


def sign_archive(data: bytes, private_pem: bytes) -> bytes:
    """The ``.sig`` file content for archive bytes ``data``."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    try:
        key = serialization.load_pem_private_key(private_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SignatureError(f"cannot read the private key: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SignatureError("the signing key is not an Ed25519 private key")
    digest = hashlib.sha256(data).hexdigest()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signature = key.sign(digest.encode())
    doc = {
        "algorithm": ALGORITHM,
        "sha256": digest,
        "key": key_fingerprint(public_pem),
        "signature": base64.b64encode(signature).decode(),
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def load_trusted_keys(items: Iterable[str | bytes | Path]) -> dict[str, bytes]:
    """Public keys by fingerprint, from PEM text/bytes, ``.pub`` files or directories."""
    keys: dict[str, bytes] = {}

    def add(pem: bytes, origin: str) -> None:
        try:
            keys[key_fingerprint(pem)] = pem
        except (ValueError, SignatureError) as exc:
            raise SignatureError(f"{origin} is not an Ed25519 public key: {exc}") from exc

    def read(path: Path) -> bytes:
        # Capped: a key is a few hundred bytes, and `--trusted-key /dev/zero` must not hang.
        try:
            return read_file_capped(path, MAX_SMALL_FILE_BYTES, "public key (.pub) file")
        except OSError as exc:
            raise SignatureError(
                f"cannot read trusted key {str(path)!r}: {exc.strerror or exc}"
            ) from None
        except PackageError as exc:
            raise SignatureError(f"trusted key: {exc}") from None

    for item in items:
        if isinstance(item, bytes) or (isinstance(item, str) and "BEGIN PUBLIC KEY" in item):
            add(item if isinstance(item, bytes) else item.encode(), "a trusted key")
            continue
        path = Path(item)
        if path.is_dir():
            for pub in sorted(path.glob("*.pub")):
                add(read(pub), str(pub))
        elif path.exists():
            add(read(path), str(path))
        else:
            raise SignatureError(f"trusted key {str(path)!r} does not exist")
    return keys


def verify_signature(data: bytes, signature: bytes | None, trusted: dict[str, bytes]) -> str:
    """Check a ``.sig`` against archive bytes and trusted keys; the signer's fingerprint."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if not signature:
        raise SignatureError(
            "the package is not signed and this runner requires signatures; sign it with "
            "`cloacina package sign FILE --key KEY` and register it with its .sig file"
        )
    try:
        doc = json.loads(signature)
        digest, fp = str(doc["sha256"]), str(doc["key"])
        sig = base64.b64decode(str(doc["signature"]), validate=True)
        if doc.get("algorithm") != ALGORITHM:
            raise SignatureError(f"unsupported signature algorithm {doc.get('algorithm')!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"the signature file is malformed: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if digest != actual:
        raise SignatureError(
            "the signature is for different package bytes (the archive was changed after "
            "it was signed, or the .sig belongs to another file)"
        )
    pem = trusted.get(fp)
    if pem is None:
        raise SignatureError(
            f"the package is signed by key {fp}, which is not among the trusted keys; "
            "trust its .pub file with --trusted-key FILE.pub (cloacina package register, "
            "package verify) or trusted_keys=[...] (DefaultRunner)"
        )
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, ed25519.Ed25519PublicKey)
    try:
        key.verify(sig, digest.encode())
    except InvalidSignature:
        raise SignatureError(f"the signature does not verify with key {fp}") from None
    return str(fp)
