"""Jobs for plain RQ (no web layer, no callbacks, no progress): the floor of our overhead."""


def noop() -> None:
    """Do nothing; the short-job throughput figure times RQ itself."""
