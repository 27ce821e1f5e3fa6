"""Certificates made at test time with `cryptography`: a CA, a server and a client it signed,
and a second CA with a client of its own (trusted by nothing in the mesh).

The server certificate names ``127.0.0.1`` and ``localhost`` (subject alternative names), so
grpc, httpx, openai's SDK and grpcurl all accept it for a loopback address.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from llmesh.services.common.tls_settings import TlsConfig, TlsSettings

_Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Pki:
    """Where the PEM files are."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    """A CA that signed neither the server's nor the client's certificate."""
    other_client_cert: Path
    """A client certificate signed by `other_ca`: refused by a listener trusting `ca`."""
    other_client_key: Path

    def mutual(self) -> TlsConfig:
        """Every listener on the server certificate requiring clients of `ca`; every client
        trusting `ca` and presenting the client certificate."""
        return TlsConfig(
            TlsSettings(
                cert=str(self.server_cert),
                key=str(self.server_key),
                client_ca=str(self.ca),
                ca=str(self.ca),
                client_cert=str(self.client_cert),
                client_key=str(self.client_key),
            )
        )

    def client_context(self, *, cert: bool = True) -> ssl.SSLContext:
        """An HTTPS client context trusting `ca` (presenting the client certificate)."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if cert:
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key() -> _Key:
    return ec.generate_private_key(ec.SECP256R1())


def _builder(subject: str, issuer: x509.Name, public: ec.EllipticCurvePublicKey) -> Any:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _ca(common_name: str) -> tuple[x509.Certificate, _Key]:
    key = _key()
    cert = (
        _builder(common_name, _name(common_name), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common_name: str, ca: tuple[x509.Certificate, _Key], *, server: bool
) -> tuple[x509.Certificate, _Key]:
    key = _key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(common_name, ca[0].subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[1].public_key()), False
        )
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca[1], hashes.SHA256()), key


def _write(directory: Path, name: str, cert: x509.Certificate, key: _Key | None) -> Path:
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        (directory / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return path


def make_pki(directory: Path) -> Pki:
    """Make the CAs and certificates, written as PEM files into `directory`."""
    ca = _ca("llmesh test CA")
    other = _ca("some other CA")
    _write(directory, "ca", ca[0], None)
    _write(directory, "other-ca", other[0], None)
    for name, issuer, server in (
        ("server", ca, True),
        ("client", ca, False),
        ("other-client", other, False),
    ):
        _write(directory, name, *_leaf(f"llmesh {name}", issuer, server=server))
    return Pki(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.pem",
        other_client_cert=directory / "other-client.pem",
        other_client_key=directory / "other-client.key",
    )
