"""One Redis client per process, and the RQ queues built on it, kept in app.extensions."""

from flask import Flask, current_app
from redis import BlockingConnectionPool, Redis
from rq import Queue

from web.config import queue_names


def init_app(app: Flask) -> None:
    """Build the process's Redis client (or take the one tests hand in) and its queues."""
    connection = app.config.get("REDIS_CONNECTION")
    if connection is None:
        if not app.config.get("REDIS_URL"):
            raise RuntimeError("REDIS_URL is not set: point it at a Redis server (make run starts one)")
        timeout = app.config["REDIS_SOCKET_TIMEOUT_S"]
        # redis-py's default pool raises at once past 100 connections, which turned a burst of
        # over 100 concurrent requests into 503s; this one makes a request wait for a free
        # connection (up to the timeout), and holds fewer connections under gevent.
        pool = BlockingConnectionPool.from_url(
            app.config["REDIS_URL"],
            max_connections=app.config["REDIS_MAX_CONNECTIONS"],
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )
        connection = Redis.from_pool(pool)
    names = queue_names(app.config["QUEUES"])
    app.extensions["rq"] = {
        "redis": connection,
        "queues": {name: Queue(name, connection=connection) for name in names},
    }


def get_redis() -> Redis:
    """The current app's Redis client."""
    return current_app.extensions["rq"]["redis"]


def get_queue(name: str = "default") -> Queue:
    """One of the current app's configured queues.

    Raises:
        KeyError: no queue of that name is configured.
    """
    return current_app.extensions["rq"]["queues"][name]
