"""Certificates and keys for a federation over the network.

TLS: a private certificate authority signs the server's certificate; every client trusts
the CA. Node authentication (Flower's SuperNode auth): each client holds an EC P-384 key
pair in OpenSSH format; the server registers the public keys it accepts, and a SuperNode
whose key is not registered is refused.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelyard.errors import ArtifactError
from modelyard.plugins import require

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
CLIENT_PREFIX = "client-"
PUBLIC_SUFFIX = ".pub"
DEFAULT_HOSTS = ("localhost", "127.0.0.1")


@dataclass
class KeyFiles:
    """Paths of a federation's key material."""

    directory: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_keys: list[Path]
    client_public_keys: list[Path]


def create_keys(
    directory: str | Path,
    clients: int,
    hosts: list[str] | None = None,
    days: int = 365,
    overwrite: bool = False,
) -> KeyFiles:
    """Create a CA, a server certificate for `hosts` and `clients` client key pairs.

    The server certificate names localhost and 127.0.0.1 plus every entry of `hosts`
    (DNS names or IP addresses clients dial). Client keys are EC P-384 in OpenSSH format,
    as Flower's SuperNode authentication reads them. Private keys are written mode 0600.
    Returns the paths; raises ArtifactError when `directory` already holds keys and not
    `overwrite`, ValueError for fewer than one client.
    """
    require("cryptography", extra="federated")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if clients < 1:
        raise ValueError("create_keys needs at least one client")
    out = Path(directory)
    if (out / CA_CERT).exists() and not overwrite:
        raise ArtifactError(f"{out} already holds federation keys; pass overwrite to replace them")
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelyard federation CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
    server_key = ec.generate_private_key(ec.SECP384R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys([*DEFAULT_HOSTS, *(hosts or [])]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelyard federation")])
    server_cert = (
        _builder(server_name, ca_name, server_key.public_key(), now, days)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    pem = serialization.Encoding.PEM
    _write(out / CA_CERT, ca_cert.public_bytes(pem), private=False)
    _write(out / CA_KEY, _pem_key(ca_key), private=True)
    _write(out / SERVER_CERT, server_cert.public_bytes(pem), private=False)
    _write(out / SERVER_KEY, _pem_key(server_key), private=True)
    private_paths, public_paths = [], []
    for index in range(1, clients + 1):
        key = ec.generate_private_key(ec.SECP384R1())
        private = out / f"{CLIENT_PREFIX}{index}.key"
        public = out / f"{CLIENT_PREFIX}{index}{PUBLIC_SUFFIX}"
        _write(
            private,
            key.private_bytes(
                pem, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
            ),
            private=True,
        )
        _write(
            public,
            key.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            ),
            private=False,
        )
        private_paths.append(private)
        public_paths.append(public)
    return KeyFiles(
        out, out / CA_CERT, out / SERVER_CERT, out / SERVER_KEY, private_paths, public_paths
    )


def authorized_keys(directory: Path) -> list[Path]:
    """Return the client public keys (`client-*.pub`) in `directory`, sorted by name."""
    return sorted(directory.glob(f"{CLIENT_PREFIX}*{PUBLIC_SUFFIX}"))


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    days: int,
) -> x509.CertificateBuilder:
    from cryptography import x509

    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, private: bool) -> None:
    # private keys never exist world-readable, not even for a moment
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
