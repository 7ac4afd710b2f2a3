"""A real SMTP server for tests: aiosmtpd on a free port, keeping every message it receives."""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller

from support.servers import free_port


@dataclass
class Inbox:
    """What the server received: one (envelope recipients, message bytes) per message."""

    port: int = 0
    messages: list[tuple[list[str], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The SMTP_URL that reaches this server."""
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        """aiosmtpd hook: keep the message."""
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@contextlib.contextmanager
def smtp_server() -> Iterator[Inbox]:
    """Run aiosmtpd on a free port (Controller(port=0) fails its own self-check), retrying a taken port."""
    inbox = Inbox()
    for attempt in range(5):
        inbox.port = free_port()
        controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
        try:
            controller.start()
            break
        except Exception:
            if attempt == 4:
                raise
    try:
        yield inbox
    finally:
        controller.stop()
