"""Who is calling: a bearer token and its scopes, or a browser's session; and who may act on a job.

A browser gets a random identity in its signed session cookie when it loads the page (or at
its first start when it already sends a cookie); the cookie also lists the jobs it started,
so the page redraws their rows after a reload. A client that sends no cookie costs no cookie
work: it has no identity, so its jobs can be cancelled only with a token holding `cancel:any`.
A job started with a token belongs to that token's name.
"""

import hashlib
import secrets
from dataclasses import dataclass

from flask import Flask, current_app, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized

from web.extensions import get_redis
from web.tokens import CANCEL_ANY, Token, lookup

SESSION_KEY = "job_ids"
GROUPS_KEY = "group_ids"
IDENTITY_KEY = "sid"
# Enough rows for a page, few enough ids (36 characters each) to keep the cookie far below 4 KB.
MAX_REMEMBERED = 20


@dataclass(frozen=True)
class Caller:
    """The client behind the current request: a token, a browser session, or nobody known."""

    token: Token | None = None
    session_id: str | None = None

    @property
    def owner(self) -> str | None:
        """What a job started by this caller records as its owner (None: nobody can claim it)."""
        if self.token is not None:
            return f"token:{self.token.name}"
        if self.session_id is not None:
            return session_owner(self.session_id)
        return None

    def has_scope(self, scope: str) -> bool:
        """Whether the caller's token grants `scope`."""
        return self.token is not None and self.token.has_scope(scope)


def session_owner(identity: str) -> str:
    """The owner name of a browser session's identity: a hash of it, never the identity itself."""
    return "session:" + hashlib.sha256(identity.encode()).hexdigest()[:32]


def browser_owner() -> str | None:
    """The owner name of this browser's session identity, if its cookie carries one (none is made)."""
    if not has_session_cookie():
        return None
    identity = session.get(IDENTITY_KEY)
    return session_owner(identity) if isinstance(identity, str) and identity else None


class LazySessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, without building its signer for a request that sends no cookie.

    Flask builds the signer on every request (about 35 us here); a client without a cookie
    (an API client, a load generator) never needs it. A new session set during the request
    is still signed when the answer is saved.
    """

    def open_session(self, app: Flask, request) -> SecureCookieSession | None:
        """An empty session when the request has no cookie, else Flask's."""
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SecureCookieSession, response) -> None:
        """Flask's, except that an event stream never sends back a session it did not change: its
        answer can come after a newer cookie (a start in another tab added a row to it), which
        Flask's refresh of a permanent session would overwrite with the stream's older one."""
        if response.mimetype == "text/event-stream" and not session.modified:
            return
        super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    """Use the lazy session interface."""
    app.session_interface = LazySessionInterface()


def current_caller() -> Caller:
    """Who is calling (looked up once per request: a token costs one Redis round trip).

    Raises:
        Unauthorized: an `Authorization: Bearer` header with a malformed, unknown or revoked token.
    """
    caller = g.get("caller")
    if caller is None:
        secret = bearer_secret()
        if secret is not None:
            token = lookup(get_redis(), secret)
            if token is None:
                raise unauthorized("unknown or revoked token")
            caller = Caller(token=token)
        else:
            caller = Caller(session_id=ensure_identity() if has_session_cookie() else None)
        g.caller = caller
    return caller


def bearer_secret() -> str | None:
    """The token in `Authorization: Bearer <token>`; None without a bearer header.

    Raises:
        Unauthorized: the header says Bearer but carries no token.
    """
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    if not secret.strip():
        raise unauthorized("the Authorization header names no token")
    return secret.strip()


def require_scope(scope: str) -> Caller:
    """The caller, if its token grants `scope`.

    Raises:
        Unauthorized: no token (401 with `WWW-Authenticate: Bearer`).
        Forbidden: a token without the scope (403 naming it).
    """
    caller = current_caller()
    if caller.token is None:
        raise unauthorized(f"this needs an API token with the scope {scope}")
    if not caller.has_scope(scope):
        raise Forbidden(f"token {caller.token.name!r} lacks the scope {scope}")
    return caller


def may_act_on(owner: str | None) -> bool:
    """Whether the caller may change something `owner` started: it is that owner, or holds cancel:any."""
    caller = current_caller()
    return caller.has_scope(CANCEL_ANY) or (owner is not None and owner == caller.owner)


def require_owner(owner: str | None, what: str = "this job") -> None:
    """Go on only when the caller may act on what `owner` started (see `may_act_on`).

    Raises:
        Unauthorized: a malformed, unknown or revoked token.
        Forbidden: anyone else; nothing was changed.
    """
    if not may_act_on(owner):
        raise Forbidden(
            f"only the browser or token that started {what} may do that, "
            f"or a token with the scope {CANCEL_ANY}"
        )


def unauthorized(message: str) -> Unauthorized:
    """A 401 that asks for a bearer token."""
    return Unauthorized(message, www_authenticate=WWWAuthenticate("bearer", {"realm": "rq-progress"}))


def has_session_cookie() -> bool:
    """Whether the request carries a session cookie (no cookie: no session work at all)."""
    return current_app.config["SESSION_COOKIE_NAME"] in request.cookies


def ensure_identity() -> str:
    """This browser's random identity, created (and the cookie set) when it has none."""
    identity = session.get(IDENTITY_KEY)
    if not isinstance(identity, str) or not identity:
        identity = secrets.token_urlsafe(18)
        session[IDENTITY_KEY] = identity
        session.permanent = True
    return identity


@dataclass(frozen=True)
class Remembered:
    """A list of ids this browser's session keeps under `key`: the jobs, or the groups, it started."""

    key: str

    def ids(self) -> list[str]:
        """The ids, oldest first."""
        ids = session.get(self.key)
        return [known for known in ids if isinstance(known, str)] if isinstance(ids, list) else []

    def add(self, new_id: str) -> None:
        """Add an id, newest last, keeping the last MAX_REMEMBERED."""
        ids = [known for known in self.ids() if known != new_id]
        session[self.key] = [*ids, new_id][-MAX_REMEMBERED:]
        session.permanent = True

    def keep_only(self, ids: list[str]) -> None:
        """Forget every id but these (the others have expired); the cookie changes only if some went."""
        if ids != self.ids():
            session[self.key] = list(ids)


REMEMBERED_JOBS = Remembered(SESSION_KEY)
REMEMBERED_GROUPS = Remembered(GROUPS_KEY)
