"""API tokens: created and revoked by an operator, checked on every request that carries one.

A token is a random secret shown once, when it is created. Redis keeps only its SHA-256: one
hash per token (name, scopes, created), a name index (for list and revoke) and a sorted set
of last uses, so every web process on every host checks every token, and a revoked token
fails at once. Scopes: `start:<job name>`, `start:*` and `cancel:any`.
"""

import hashlib
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from redis import Redis

from jobs.keys import token_index_key, token_key, token_last_used_key

START_ANY = "start:*"
CANCEL_ANY = "cancel:any"
SECRET_PREFIX = "rqp_"
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class BadToken(ValueError):
    """A token's name or scopes are not valid, or the name is taken."""


@dataclass(frozen=True)
class Token:
    """What Redis knows about one token (never its secret)."""

    name: str
    scopes: frozenset[str]
    created_at: float
    last_used_at: float | None = None

    def has_scope(self, scope: str) -> bool:
        """Whether the token grants `scope` (`start:*` grants every `start:<job>`)."""
        return scope in self.scopes or (scope.startswith("start:") and START_ANY in self.scopes)


def start_scope(job_name: str) -> str:
    """The scope that lets a token start one job."""
    return f"start:{job_name}"


def digest(secret: str) -> str:
    """The SHA-256 under which a token's secret is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_scopes(scopes: Iterable[str], job_names: Iterable[str]) -> frozenset[str]:
    """The scopes, if each is one a token can hold.

    Raises:
        BadToken: no scope, or one that names no registered job or no known right.
    """
    known = {START_ANY, CANCEL_ANY, *(start_scope(name) for name in job_names)}
    scopes = frozenset(scopes)
    if not scopes:
        raise BadToken("give the token at least one --scope")
    unknown = sorted(scopes - known)
    if unknown:
        raise BadToken(f"unknown scope {unknown[0]!r}; the scopes are {', '.join(sorted(known))}")
    return scopes


def create(connection: Redis, name: str, scopes: frozenset[str]) -> str:
    """Store a new token; returns its secret, which nothing keeps.

    Raises:
        BadToken: the name is not 1-64 letters, digits, `_`, `.` or `-`, or is taken.
    """
    if not NAME_PATTERN.fullmatch(name):
        raise BadToken("a token name is 1 to 64 letters, digits, '_', '.' or '-'")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    hashed = digest(secret)
    # HSETNX claims the name atomically: two operators cannot both create "ci".
    if not connection.hsetnx(token_index_key(), name, hashed):
        raise BadToken(f"a token named {name!r} exists already; revoke it first")
    pipe = connection.pipeline()
    fields = {"name": name, "scopes": " ".join(sorted(scopes)), "created": time.time()}
    pipe.hset(token_key(hashed), mapping=fields)
    pipe.zadd(token_last_used_key(), {hashed: 0})
    pipe.execute()
    return secret


def lookup(connection: Redis, secret: str) -> Token | None:
    """The token a secret belongs to, noting its use; None for an unknown or revoked one.

    One round trip: the read and the last-use write go in one pipeline (ZADD XX touches only
    tokens that exist, so unknown secrets write nothing).
    """
    hashed = digest(secret)
    pipe = connection.pipeline(transaction=False)
    pipe.hgetall(token_key(hashed))
    pipe.zadd(token_last_used_key(), {hashed: time.time()}, xx=True)
    fields, _ = pipe.execute()
    return _token(fields) if fields else None


def all_tokens(connection: Redis) -> list[Token]:
    """Every token, by name."""
    index = connection.hgetall(token_index_key())
    pipe = connection.pipeline(transaction=False)
    for hashed in index.values():
        pipe.hgetall(token_key(_text(hashed)))
        pipe.zscore(token_last_used_key(), _text(hashed))
    replies = pipe.execute()
    tokens = []
    for fields, last_used in zip(replies[::2], replies[1::2], strict=True):
        if fields:
            tokens.append(_token(fields, last_used or None))
    return sorted(tokens, key=lambda token: token.name)


def revoke(connection: Redis, name: str) -> bool:
    """Delete a token by name; returns whether there was one."""
    hashed = connection.hget(token_index_key(), name)
    if hashed is None:
        return False
    pipe = connection.pipeline()
    pipe.delete(token_key(_text(hashed)))
    pipe.zrem(token_last_used_key(), _text(hashed))
    pipe.hdel(token_index_key(), name)
    pipe.execute()
    return True


def _token(fields: dict, last_used: float | None = None) -> Token:
    text = {_text(key): _text(value) for key, value in fields.items()}
    return Token(text["name"], frozenset(text["scopes"].split()), float(text["created"]), last_used)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
