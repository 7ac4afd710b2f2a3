"""The email job: one plain-text message per recipient through the SMTP server in SMTP_URL.

SMTP_URL is read by the worker, never taken from a request: `smtp://[user:password@]host[:port]`
(port 25; add `?starttls=1` to upgrade the connection) or `smtps://...` (TLS from the start,
port 465). The sender is SMTP_FROM (default `rq-progress@localhost`). TLS verifies the server's
certificate and name against the system's CAs, or the CA file SMTP_CA_FILE names (a private
server's): `smtplib` without a context would accept any certificate, and hand the password to
whoever sits on the path.
"""

import logging
import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from jobs.progress import report, resume_point

log = logging.getLogger(__name__)

DEFAULT_FROM = "rq-progress@localhost"
SMTP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send: parsed from SMTP_URL."""

    host: str
    port: int
    use_ssl: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None


def parse_smtp_url(url: str | None) -> SmtpSettings:
    """Read `smtp://` or `smtps://` URLs.

    Raises:
        ValueError: the URL is missing or not an SMTP URL (the job fails with this message).
    """
    if not url:
        raise ValueError("SMTP_URL is not set on the worker")
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("SMTP_URL must look like smtp://host:port or smtps://host:port")
    use_ssl = parts.scheme == "smtps"
    query = parse_qs(parts.query)
    return SmtpSettings(
        host=parts.hostname,
        port=parts.port or (465 if use_ssl else 25),
        use_ssl=use_ssl,
        starttls=query.get("starttls", ["0"])[0].lower() in ("1", "true", "yes"),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A context that verifies the server's certificate and name: the system's CAs, or `ca_file`'s."""
    return ssl.create_default_context(cafile=ca_file or None)


def connect(settings: SmtpSettings, context: ssl.SSLContext | None = None) -> smtplib.SMTP:
    """An open, logged-in SMTP connection; TLS (smtps or STARTTLS) is verified with `context`.

    Raises:
        ssl.SSLCertVerificationError: the server's certificate is not trusted or not for its name.
    """
    context = context or tls_context()
    if settings.use_ssl:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=SMTP_TIMEOUT_S, context=context
        )
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT_S)
    if settings.starttls:
        smtp.starttls(context=context)
    if settings.username:
        smtp.login(settings.username, settings.password or "")
    return smtp


def send_email(to: list[str], subject: str, body: str = "") -> dict:
    """Send `subject`/`body` to each address in `to`, one message each, reporting every recipient.

    A retried attempt starts after the recipients an earlier attempt reported as sent.
    """
    settings = parse_smtp_url(os.environ.get("SMTP_URL"))
    sender = os.environ.get("SMTP_FROM") or DEFAULT_FROM
    total = len(to)
    start = min(resume_point(), total)
    report(start, total, "connecting to the mail server")
    with connect(settings, tls_context(os.environ.get("SMTP_CA_FILE"))) as smtp:
        for done, recipient in enumerate(to[start:], start=start + 1):
            message = EmailMessage()
            message["From"] = sender
            message["To"] = recipient
            message["Subject"] = subject
            message.set_content(body)
            smtp.send_message(message)
            report(done, total, f"sent to {recipient}")
    return {"sent": total - start, "recipients": total}
