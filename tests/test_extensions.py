from redis import BlockingConnectionPool

from support.apps import UNIT_SETTINGS
from web import create_app
from web.extensions import get_redis


def test_web_redis_pool_waits_for_a_free_connection_up_to_the_socket_timeout():
    # redis-py's default pool raises past 100 connections: 128 concurrent status reads on one
    # gevent worker answered 26% of them 503 (bench/). A blocking pool makes them wait instead.
    app = create_app({**UNIT_SETTINGS, "REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_MAX_CONNECTIONS": 7})
    with app.app_context():
        pool = get_redis().connection_pool
    assert isinstance(pool, BlockingConnectionPool)
    assert pool.max_connections == 7
    assert pool.timeout == app.config["REDIS_SOCKET_TIMEOUT_S"]
