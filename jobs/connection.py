"""Where Redis is, and the one way every process builds its client: from REDIS_URL or Redis Sentinel.

Settings, read from a mapping (the web hands in its config, the worker's settings module the
environment), parsed here and nowhere else:

- `REDIS_URL`: one server, `redis://[:password@]host:port/db`;
- or `REDIS_SENTINELS=host:port,host:port,...` with `REDIS_SENTINEL_MASTER=name` (and
  `REDIS_PASSWORD`, `REDIS_DB`, `SENTINEL_PASSWORD` when needed): the primary the sentinels
  name, looked up again on each new connection, so a failover needs no restart.

Connections never retry on their own by default. redis-py's `Redis(host, ...)` retries for about
4 s when the server is down while `Redis.from_url` fails at once (STACK.md); the Sentinel
client builds its sentinel clients with `Redis(...)`, so they get explicit options here too.
A web request answers 503 at once instead. The worker rides out an outage or a failover: its
class (`jobs.outage.RidesOutages`) gives every connection of its client, from `--url` or from
these settings, the retry of `jobs.outage` (within `REDIS_OUTAGE_GRACE_S`); the Sentinel
settings' own retry (`OUTAGE_RIDE_S`) is what another worker class gets.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from redis import BlockingConnectionPool, Redis
from redis.backoff import ConstantBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.utils import SENTINEL as UNSET

log = logging.getLogger(__name__)

# Every setting this module reads, by its environment name.
SETTING_NAMES = (
    "REDIS_URL",
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_MASTER",
    "REDIS_PASSWORD",
    "REDIS_DB",
    "SENTINEL_PASSWORD",
)
# How long a worker's Sentinel connection keeps retrying a command while no primary answers:
# long enough for a failover with `down-after-milliseconds` up to about 25 s.
OUTAGE_RIDE_S = 30.0
RIDE_RETRY_INTERVAL_S = 0.5
# The worker's limit for opening a connection and for each question to a sentinel.
WORKER_CONNECT_TIMEOUT_S = 5.0
# Seconds between PINGs on a connection idle for that long, so a dead peer is noticed on reuse.
HEALTH_CHECK_INTERVAL_S = 30


class RedisSettingsError(RuntimeError):
    """The Redis settings are missing, contradictory or malformed; the message names the variable."""


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: a URL, or a Sentinel-managed primary."""

    url: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str | None = None
    password: str | None = None
    db: int = 0
    sentinel_password: str | None = None

    @property
    def uses_sentinel(self) -> bool:
        """Whether the sentinels name the server."""
        return bool(self.sentinels)

    def describe(self) -> str:
        """Where Redis is, for logs and the start banner; never shows a password."""
        if self.uses_sentinel:
            hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"sentinel://{hosts}/{self.master} (db {self.db})"
        parts = urlsplit(self.url or "")
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return parts._replace(netloc=netloc, query="").geturl()


def target_from(settings: Mapping[str, Any]) -> RedisTarget:
    """Parse the Redis settings (see the module docstring) from a mapping such as os.environ.

    Raises:
        RedisSettingsError: neither REDIS_URL nor REDIS_SENTINELS is set, both are, or one is malformed.
    """
    value = {name: str(settings.get(name) or "").strip() for name in SETTING_NAMES}
    if value["REDIS_SENTINELS"]:
        if value["REDIS_URL"]:
            raise RedisSettingsError("set REDIS_URL or REDIS_SENTINELS, not both")
        if not value["REDIS_SENTINEL_MASTER"]:
            raise RedisSettingsError(
                "REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER (the primary's name) is not"
            )
        return RedisTarget(
            sentinels=_parse_sentinels(value["REDIS_SENTINELS"]),
            master=value["REDIS_SENTINEL_MASTER"],
            password=value["REDIS_PASSWORD"] or None,
            db=_parse_db(value["REDIS_DB"]),
            sentinel_password=value["SENTINEL_PASSWORD"] or None,
        )
    if not value["REDIS_URL"]:
        raise RedisSettingsError(
            "REDIS_URL is not set: point it at a Redis server (make run starts one), "
            "or set REDIS_SENTINELS and REDIS_SENTINEL_MASTER"
        )
    for name in ("REDIS_SENTINEL_MASTER", "REDIS_PASSWORD", "REDIS_DB", "SENTINEL_PASSWORD"):
        if value[name]:
            raise RedisSettingsError(f"{name} applies with REDIS_SENTINELS; with REDIS_URL put it in the URL")
    if urlsplit(value["REDIS_URL"]).scheme not in ("redis", "rediss", "unix"):
        raise RedisSettingsError("REDIS_URL must start with redis://, rediss:// or unix://")
    return RedisTarget(url=value["REDIS_URL"])


def _parse_sentinels(raw: str) -> tuple[tuple[str, int], ...]:
    sentinels = []
    for item in raw.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise RedisSettingsError(f"REDIS_SENTINELS must be host:port,...; {item.strip()!r} is not")
        sentinels.append((host.strip("[]"), int(port)))
    return tuple(sentinels)


def _parse_db(raw: str) -> int:
    if not raw:
        return 0
    if not raw.isdigit():
        raise RedisSettingsError(f"REDIS_DB must be a database number, not {raw!r}")
    return int(raw)


def connect(
    target: RedisTarget,
    *,
    timeout_s: float,
    max_connections: int = 50,
    ride_out_s: float = 0.0,
) -> Redis:
    """The process's Redis client: a blocking pool on the URL, or on the primary the sentinels name.

    Args:
        target: where Redis is.
        timeout_s: the socket timeout for connecting and for each command, and the longest wait for
            a free pooled connection (redis-py 8's default pool raises at once past its cap).
        max_connections: the pool's cap.
        ride_out_s: keep retrying a command this long while Redis is unreachable (0: fail at once).
    """
    options = connection_options(timeout_s, ride_out_s)
    pool_options = {"max_connections": max_connections, "timeout": timeout_s}
    if not target.uses_sentinel:
        return Redis.from_pool(BlockingConnectionPool.from_url(target.url, **options, **pool_options))
    return sentinel_manager(target, timeout_s, ride_out_s).master_for(
        target.master,
        connection_pool_class=BlockingSentinelConnectionPool,
        **pool_options,
    )


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool (finds the primary on each connect) that waits for a free connection."""


class SentinelConnection(SentinelManagedConnection):
    """redis-py's Sentinel connection, dropped when a read is cut short, re-homed when it reconnects.

    redis-py's `SentinelManagedConnection.read_response` defaults `disconnect_on_error` to False,
    unlike every other connection: a read interrupted by an exception (RQ's warm shutdown raises
    one from its signal handler during the blocking dequeue) put the connection back in the pool
    with the reply still owed, and the worker's next command waited ~7 min for that BLPOP to end.
    """

    def read_response(self, disable_decoding=False, *, timeout=UNSET, disconnect_on_error=True, **kwargs):
        return super().read_response(
            disable_decoding, timeout=timeout, disconnect_on_error=disconnect_on_error, **kwargs
        )

    def send_packed_command(self, command, check_health=True):
        """Reconnect through the sentinels, as `connect()` does, before sending on a dropped socket.

        redis-py 8's `send_packed_command` reconnects a dropped connection with
        `connect_check_health`, to the address it had: a command retried across a failover kept
        dialling the dead primary until its retries ran out, never asking the sentinels.
        """
        if not self._sock:
            self.connect()
        return super().send_packed_command(command, check_health)


def connection_options(timeout_s: float | None, ride_out_s: float = 0.0) -> dict[str, Any]:
    """Keyword arguments for every data connection to Redis (not to the sentinels)."""
    return {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
        "retry": _retry(ride_out_s),
    }


def _retry(ride_out_s: float) -> Retry:
    if ride_out_s <= 0:
        return Retry(NoBackoff(), 0)
    retries = max(1, round(ride_out_s / RIDE_RETRY_INTERVAL_S))
    return Retry(ConstantBackoff(RIDE_RETRY_INTERVAL_S), retries, (RedisConnectionError, RedisTimeoutError))


def sentinel_options(target: RedisTarget, timeout_s: float) -> dict[str, Any]:
    """Keyword arguments for the clients that talk to the sentinels: short timeouts, no retries.

    Without them redis-py builds each sentinel client with `Redis(...)`'s 4-second retry.
    """
    return {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "password": target.sentinel_password,
        "retry": Retry(NoBackoff(), 0),
    }


def sentinel_manager(target: RedisTarget, timeout_s: float, ride_out_s: float = 0.0) -> Sentinel:
    """The redis-py Sentinel object for the target's sentinels (data connections on its primary)."""
    return Sentinel(
        list(target.sentinels),
        sentinel_kwargs=sentinel_options(target, timeout_s),
        password=target.password,
        db=target.db,
        connection_class=SentinelConnection,
        **connection_options(timeout_s, ride_out_s),
    )


def check_sentinels(target: RedisTarget, timeout_s: float) -> None:
    """Make sure some sentinel answers and knows the primary's name (a start-up check).

    A primary that is down right now is fine (a failover may be under way): requests answer 503
    until the sentinels name a new one.

    Raises:
        RedisSettingsError: no sentinel in REDIS_SENTINELS answers, or none knows REDIS_SENTINEL_MASTER.
    """
    if not target.uses_sentinel:
        return
    options = sentinel_options(target, timeout_s)
    errors = []
    for host, port in target.sentinels:
        client = Redis(host, port, **options)
        try:
            masters = client.sentinel_masters()
        except (RedisError, OSError) as exc:  # refused, timed out, auth failed, not a sentinel
            errors.append(f"{host}:{port}: {exc}")
            continue
        finally:
            client.close()
        if target.master in masters:
            return
        errors.append(f"{host}:{port} does not monitor {target.master!r}")
    if all("does not monitor" in error for error in errors):
        raise RedisSettingsError(
            f"no sentinel in REDIS_SENTINELS monitors REDIS_SENTINEL_MASTER={target.master!r} "
            f"({'; '.join(errors)})"
        )
    raise RedisSettingsError(f"no sentinel in REDIS_SENTINELS answered ({'; '.join(errors)})")


def rq_settings(target: RedisTarget) -> dict[str, Any]:
    """RQ worker settings for the same target: `REDIS_URL`, or RQ's `SENTINEL` dict.

    The Sentinel connection rides out a failover for OUTAGE_RIDE_S (our worker class replaces that
    retry with `jobs.outage`'s, see the module docstring). RQ sets the socket
    timeout itself, above its blocking dequeue's (about 7 minutes).
    """
    if not target.uses_sentinel:
        return {"REDIS_URL": target.url, "SENTINEL": None}
    return {
        "REDIS_URL": None,
        "SENTINEL": {
            "INSTANCES": list(target.sentinels),
            "MASTER_NAME": target.master,
            "DB": target.db,
            "PASSWORD": target.password,
            "SOCKET_TIMEOUT": None,
            "CONNECTION_KWARGS": {
                "connection_class": SentinelConnection,
                **{
                    key: value
                    for key, value in connection_options(WORKER_CONNECT_TIMEOUT_S, OUTAGE_RIDE_S).items()
                    if key != "socket_timeout"
                },
            },
            "SENTINEL_KWARGS": sentinel_options(target, WORKER_CONNECT_TIMEOUT_S),
        },
    }
