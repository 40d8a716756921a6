"""Throwaway TLS material for local HTTPS services (Azurite in OAuth mode needs HTTPS).

A private CA signs one server certificate for 127.0.0.1 and localhost. Clients trust the CA
file, never the server certificate directly, exactly as they trust a public CA in Azure: point
REQUESTS_CA_BUNDLE (the Azure SDK's requests transport reads it) or `connection_verify` at
`LocalCertificates.ca_bundle`.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1")
# Long enough for any test run or dev session, short enough that a leaked file is worthless.
DEFAULT_VALIDITY = datetime.timedelta(days=7)
# Clocks of the client and the issuer may disagree slightly: start validity a little earlier.
CLOCK_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class LocalCertificates:
    ca_bundle: Path  # the CA certificate: what clients trust
    cert: Path  # server certificate (PEM) for --cert
    key: Path  # server private key (PEM, unencrypted) for --key

    def client_environment(self) -> dict[str, str]:
        """Variables that make requests (and so the Azure SDK) trust the local CA."""
        return {"REQUESTS_CA_BUNDLE": str(self.ca_bundle)}


def create_local_certificates(
    directory: Path | str,
    hosts: tuple[str, ...] = DEFAULT_HOSTS,
    validity: datetime.timedelta = DEFAULT_VALIDITY,
) -> LocalCertificates:
    """Write ca.pem, cert.pem and key.pem into `directory` and return their paths."""
    if not hosts:
        raise ValueError("at least one host name or IP address is needed for the certificate")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    not_before = datetime.datetime.now(datetime.UTC) - CLOCK_SKEW
    not_after = not_before + validity

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("restaurant-review local test CA")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        _builder(_name(hosts[0]), ca_name, server_key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_san(host) for host in hosts]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    paths = LocalCertificates(
        ca_bundle=directory / "ca.pem", cert=directory / "cert.pem", key=directory / "key.pem"
    )
    paths.ca_bundle.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths.key.touch(mode=0o600)
    paths.key.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject, issuer, key, not_before, not_after) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _key_usage(signs_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
