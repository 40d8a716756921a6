"""The throwaway CA makes a local HTTPS server trusted by a client that trusts only that CA."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509

from devtools.tls import LocalCertificates, create_local_certificates


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello over tls")

    def log_message(self, *args):
        pass


@pytest.fixture
def certificates(tmp_path: Path) -> LocalCertificates:
    return create_local_certificates(tmp_path / "tls")


@pytest.fixture
def https_port(certificates: LocalCertificates) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.cert, certificates.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    # shutdown() waits for the loop's next poll: 0.05 s instead of the default 0.5 s.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_client_trusting_the_ca_bundle_accepts_the_server(certificates, https_port, host):
    response = requests.get(f"https://{host}:{https_port}/", verify=certificates.ca_bundle,
                            timeout=5)
    assert response.text == "hello over tls"


def test_client_without_the_ca_refuses_the_server(https_port):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://127.0.0.1:{https_port}/", timeout=5)


def test_private_key_is_readable_by_its_owner_only(certificates):
    assert certificates.key.stat().st_mode & 0o077 == 0


def test_server_certificate_is_signed_by_the_ca_and_not_a_ca_itself(certificates):
    ca = x509.load_pem_x509_certificate(certificates.ca_bundle.read_bytes())
    server = x509.load_pem_x509_certificate(certificates.cert.read_bytes())
    server.verify_directly_issued_by(ca)
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_environment_points_requests_at_the_ca(certificates):
    assert certificates.client_environment() == {"REQUESTS_CA_BUNDLE": str(certificates.ca_bundle)}


def test_no_hosts_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="at least one host"):
        create_local_certificates(tmp_path, hosts=())
