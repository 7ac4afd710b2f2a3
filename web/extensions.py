"""One Redis client per process, and the RQ queues built on it, kept in app.extensions."""

from flask import Flask, current_app
from redis import Redis
from rq import Queue

from web.config import queue_names


def init_app(app: Flask) -> None:
    """Build the process's Redis client (or take the one tests hand in) and its queues."""
    connection = app.config.get("REDIS_CONNECTION")
    if connection is None:
        if not app.config.get("REDIS_URL"):
            raise RuntimeError("REDIS_URL is not set: point it at a Redis server (make run starts one)")
        timeout = app.config["REDIS_SOCKET_TIMEOUT_S"]
        connection = Redis.from_url(
            app.config["REDIS_URL"],
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )
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
