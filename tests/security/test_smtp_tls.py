"""The email job verifies the SMTP server's certificate: refused unless its CA is trusted (SMTP_CA_FILE)."""

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trustme
from aiosmtpd.controller import Controller

from jobs.mail import send_email
from support.servers import free_port
from tests.smtp_server import Inbox


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A private certificate authority, trusted by nobody by default."""
    return trustme.CA()


@contextmanager
def tls_server(ca: trustme.CA, implicit: bool) -> Iterator[Inbox]:
    """aiosmtpd with a certificate for 127.0.0.1 from `ca`: TLS from the start (smtps) or by STARTTLS."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    inbox = Inbox(port=free_port())
    options = {"ssl_context": context} if implicit else {"tls_context": context}
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port, **options)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.mark.parametrize("implicit", [True, False], ids=["smtps", "starttls"])
def test_an_untrusted_certificate_is_refused(ca, monkeypatch, implicit):
    with tls_server(ca, implicit) as inbox:
        scheme = "smtps" if implicit else "smtp"
        monkeypatch.setenv(
            "SMTP_URL", f"{scheme}://127.0.0.1:{inbox.port}{'' if implicit else '?starttls=1'}"
        )
        monkeypatch.delenv("SMTP_CA_FILE", raising=False)
        with pytest.raises(ssl.SSLCertVerificationError):
            send_email(["a@example.com"], "hi")
        assert inbox.messages == []


@pytest.mark.parametrize("implicit", [True, False], ids=["smtps", "starttls"])
def test_a_certificate_from_the_trusted_ca_is_accepted(ca, monkeypatch, tmp_path, implicit):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with tls_server(ca, implicit) as inbox:
        scheme = "smtps" if implicit else "smtp"
        monkeypatch.setenv(
            "SMTP_URL", f"{scheme}://127.0.0.1:{inbox.port}{'' if implicit else '?starttls=1'}"
        )
        monkeypatch.setenv("SMTP_CA_FILE", str(ca_file))
        assert send_email(["a@example.com"], "hi") == {"sent": 1, "recipients": 1}
        assert [rcpts for rcpts, _ in inbox.messages] == [["a@example.com"]]
