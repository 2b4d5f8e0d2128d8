"""A peer's (or index server's) long-lived TLS identity: a key and a self-signed certificate.

Pure Python, no Qt. The pair is made on first start and kept in the user's data folder
(``<stem>-key.pem`` and ``<stem>-cert.pem``, both 0600, written by atomic replace). What
others pin is the ``fingerprint``: the lowercase hex SHA-256 of the certificate's DER bytes.
A damaged or mismatched pair is replaced (with a warning), never a reason not to start.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger("napster.identity")

#: A certificate that is pinned, never checked against a clock: RFC 5280's "no expiry".
_NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)


def fingerprint_of(cert_der: bytes) -> str:
    """The fingerprint of a certificate: lowercase hex SHA-256 of its DER encoding."""
    return hashlib.sha256(cert_der).hexdigest()


def grouped_fingerprint(fingerprint: str) -> str:
    """``ab12cd34...`` as ``AB12 CD34 ...``: one way to show a fingerprint everywhere, easier
    to read aloud and compare."""
    return " ".join(fingerprint[i : i + 4].upper() for i in range(0, len(fingerprint), 4))


@dataclass(frozen=True)
class PeerIdentity:
    """A private key and its self-signed certificate, PEM-encoded."""

    key_pem: bytes
    cert_pem: bytes
    fingerprint: str
    #: The files it was loaded from or saved to; None for an identity kept in memory only.
    key_path: Path | None = None
    cert_path: Path | None = None

    def __repr__(self) -> str:  # never the key, even in a traceback
        return f"PeerIdentity(fingerprint={self.fingerprint!r}, cert_path={self.cert_path!r})"

    @classmethod
    def generate(cls, common_name: str = "napster-p2p peer") -> PeerIdentity:
        """A new ECDSA P-256 key and a self-signed certificate for it, in memory."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(_NOT_AFTER)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        return cls(key_pem, cert_pem, fingerprint_of(cert.public_bytes(serialization.Encoding.DER)))

    @staticmethod
    def paths(folder: Path, stem: str = "peer") -> tuple[Path, Path]:
        """The key and certificate files ``load_or_create`` keeps in ``folder``."""
        return folder / f"{stem}-key.pem", folder / f"{stem}-cert.pem"

    @classmethod
    def load_or_create(
        cls, folder: Path, stem: str = "peer", common_name: str = "napster-p2p peer"
    ) -> PeerIdentity:
        """The identity kept in ``folder``; a new one is made and saved if there is none.

        A pair that cannot be read as a key and its certificate is replaced with a warning.
        Raises OSError only if the folder cannot hold the new files.
        """
        key_path, cert_path = cls.paths(folder, stem)
        if key_path.exists() or cert_path.exists():
            try:
                loaded = cls._load(key_path, cert_path)
            except (OSError, ValueError) as exc:
                log.warning(
                    "The TLS identity in %s is damaged (%s); making a new one: other peers "
                    "will see a new fingerprint",
                    folder,
                    exc,
                )
            else:
                return loaded
        made = cls.generate(common_name)
        folder.mkdir(parents=True, exist_ok=True)
        # The certificate goes last: a crash in between leaves a pair that fails to load.
        _write_private(key_path, made.key_pem)
        _write_private(cert_path, made.cert_pem)
        log.info("Made a new TLS identity in %s (fingerprint %s)", folder, made.fingerprint)
        return cls(made.key_pem, made.cert_pem, made.fingerprint, key_path, cert_path)

    @classmethod
    def _load(cls, key_path: Path, cert_path: Path) -> PeerIdentity:
        key_pem = key_path.read_bytes()
        cert_pem = cert_path.read_bytes()
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the key is not an elliptic-curve key")
        cert = x509.load_pem_x509_certificate(cert_pem)
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        encoding = serialization.Encoding.DER
        if cert.public_key().public_bytes(encoding, public) != key.public_key().public_bytes(
            encoding, public
        ):
            raise ValueError("the certificate is not for this key")
        for path in (key_path, cert_path):
            with contextlib.suppress(OSError):
                if os.stat(path).st_mode & 0o077:
                    os.chmod(path, 0o600)
        der = cert.public_bytes(serialization.Encoding.DER)
        return cls(key_pem, cert_pem, fingerprint_of(der), key_path, cert_path)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only, by atomic replace."""
    # mkstemp creates the file 0600, so the key is never readable by others, even briefly.
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if hasattr(os, "O_DIRECTORY"):
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
