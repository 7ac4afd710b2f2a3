"""One Redis client per process (URL or Sentinel), and the RQ queues built on it, kept in app.extensions."""

from flask import Flask, current_app
from redis import Redis

from jobs.connection import check_sentinels, connect, target_from
from jobs.replication import ReplicaAck
from jobs.worker.dequeue import ReliableQueue
from web.config import queue_names


def init_app(app: Flask) -> None:
    """Build the process's Redis client (or take the one tests hand in) and its queues.

    Raises:
        RedisSettingsError: where Redis is is not set or malformed, or no sentinel answers.
    """
    connection = app.config.get("REDIS_CONNECTION")
    where = "the client handed in (REDIS_CONNECTION)"
    if connection is None:
        target = target_from(app.config)
        timeout = app.config["REDIS_SOCKET_TIMEOUT_S"]
        check_sentinels(target, timeout)
        # The pool makes a request wait for a free connection (up to the timeout) instead of
        # raising past redis-py's cap, and holds few connections under gevent.
        connection = connect(target, timeout_s=timeout, max_connections=app.config["REDIS_MAX_CONNECTIONS"])
        where = target.describe()
        app.logger.info("Redis: %s", where)
    names = queue_names(app.config["QUEUES"])
    app.extensions["rq"] = {
        "redis": connection,
        "where": where,
        "queues": {name: ReliableQueue(name, connection=connection) for name in names},
        "replica_ack": ReplicaAck(app.config["REDIS_REPLICA_WAIT_MS"]),
    }


def get_redis() -> Redis:
    """The current app's Redis client."""
    return current_app.extensions["rq"]["redis"]


def get_replica_ack() -> ReplicaAck:
    """The current app's check that a replica holds what was just written."""
    return current_app.extensions["rq"]["replica_ack"]


def get_queue(name: str = "default") -> ReliableQueue:
    """One of the current app's configured queues.

    Raises:
        KeyError: no queue of that name is configured.
    """
    return current_app.extensions["rq"]["queues"][name]
