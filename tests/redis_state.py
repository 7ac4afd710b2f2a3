"""A Redis database's keys as comparable text: what one run left, with what varies between runs masked.

`read_state` reads every key (type, TTL, contents) and `render` writes one key per block, its
contents decoded (RQ's pickled job data, meta and results, its compressed tracebacks) and masked:
timestamps, execution ids, pids, hostnames and durations become placeholders (the constants
below say which), and a TTL or a zset score that is a Unix time becomes an offset from the
moment the state was read, rounded to `ROUND_S`. Two runs of the same scenario then render to the
same text exactly when they left the same state, and a difference reads as a unified diff.

Job ids, group names, queue names and worker names are not masked: the scenarios fix them.
"""

import base64
import difflib
import math
import pickle
import re
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

# Offsets from "now" (TTLs, zset scores that are Unix times) are rounded to this many seconds:
# two runs read their state a few milliseconds apart after their last write, so a TTL of 500 s
# reads 499 or 500. The TTLs RQ sets are multiples of 10 s (scenarios keep to such values).
ROUND_S = 10
# A zset score above this is a Unix time (2001 on), not a count or a position.
EPOCH_FLOOR = 1e9

ISO_TIME = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?")
# A whole value that is a Unix time in seconds (RQ's executions and results store them so).
UNIX_TIME = re.compile(rb"\d{10}(?:\.\d+)?")
# Execution ids (and any other uuid4 hex RQ makes); job ids are the scenarios' own, never hex.
HEX_ID = re.compile(rb"\b[0-9a-f]{32}\b")
# Hash and stream fields that hold a process's identity, a moment or a duration, never equal twice.
VOLATILE_FIELDS = {
    b"pid": b"<pid>",
    b"hostname": b"<host>",
    b"ip_address": b"<ip>",
    b"total_working_time": b"<duration>",
    b"current_job_working_time": b"<duration>",
}
# Parts of a job's meta that hold clock readings, as paths of keys: our progress reports' rate
# state (`jobs.progress`, `jobs.estimate`: a monotonic time and a rate measured on it).
VOLATILE_META = {("progress", "rate"): "<timing>"}


@dataclass
class KeyState:
    """One key as read: its type, TTL in seconds (None: persistent), and contents."""

    type: str
    ttl: float | None
    value: Any


@dataclass
class State:
    """Every key of a database at one moment (`read_at`, Unix time)."""

    keys: dict[str, KeyState]
    read_at: float = field(default_factory=time.time)

    def select(self, prefixes: tuple[str, ...]) -> "State":
        """The keys whose names start with one of `prefixes`."""
        kept = {name: key for name, key in self.keys.items() if name.startswith(prefixes)}
        return State(kept, self.read_at)

    def omit(self, prefixes: tuple[str, ...]) -> "State":
        """The keys whose names start with none of `prefixes`."""
        kept = {name: key for name, key in self.keys.items() if not name.startswith(prefixes)}
        return State(kept, self.read_at)


def read_state(connection: Redis) -> State:
    """Read every key of the connection's database (for a small test database: it uses KEYS)."""
    read_at = time.time()
    keys = {}
    for raw in sorted(connection.keys("*")):
        kind = connection.type(raw).decode()
        pttl = connection.pttl(raw)
        if kind == "hash":
            value: Any = connection.hgetall(raw)
        elif kind == "list":
            value = connection.lrange(raw, 0, -1)
        elif kind == "set":
            value = sorted(connection.smembers(raw))
        elif kind == "zset":
            value = connection.zrange(raw, 0, -1, withscores=True)
        elif kind == "stream":
            value = connection.xrange(raw)
        elif kind == "string":
            value = connection.get(raw)
        else:
            value = f"<{kind}>"
        if pttl == -2:  # expired between KEYS and now
            continue
        keys[raw.decode()] = KeyState(kind, None if pttl < 0 else pttl / 1000, value)
    return State(keys, read_at)


def render(state: State) -> str:
    """The state as masked text, one block per key (see the module docstring)."""
    blocks = []
    for name in sorted(state.keys, key=lambda name: _mask(name.encode())):
        key = state.keys[name]
        ttl = "persistent" if key.ttl is None else f"ttl {_offset(key.ttl)}"
        lines = [f"{_text(_mask(name.encode()))}  {key.type}  {ttl}"]
        lines += [f"  {line}" for line in _contents(key, state.read_at)]
        blocks.append("\n".join(lines))
    return "\n".join(blocks) + "\n"


def diff(expected: str, actual: str, expected_name: str, actual_name: str) -> str:
    """A unified diff of two rendered states (empty when equal)."""
    lines = difflib.unified_diff(
        expected.splitlines(keepends=True),
        actual.splitlines(keepends=True),
        expected_name,
        actual_name,
        n=3,
    )
    return "".join(lines)


def listing(state: State) -> str:
    """Key names, types and TTLs only, masked: for keys that are shown but not compared."""
    rows = []
    for name, key in sorted(state.keys.items()):
        ttl = "persistent" if key.ttl is None else f"ttl {_offset(key.ttl)}"
        size = len(key.value) if isinstance(key.value, list | dict) else 1
        rows.append(f"{_text(_mask(name.encode()))}  {key.type}  {ttl}  ({size} item(s))")
    return "\n".join(rows) + "\n" if rows else "(none)\n"


def _contents(key: KeyState, read_at: float) -> list[str]:
    if key.type == "hash":
        return [f"{_text(name)} = {_field(name, value)}" for name, value in sorted(key.value.items())]
    if key.type in ("list", "set"):
        return [_text(_mask(member)) for member in key.value]
    if key.type == "zset":  # by rounded score, then member: equal scores are equal moments
        members = sorted((_score(score, read_at), _text(_mask(member))) for member, score in key.value)
        return [f"{member}  {text}" for (_, text), member in members]
    if key.type == "stream":
        lines = []
        for number, (_entry_id, entry) in enumerate(key.value, start=1):
            lines.append(f"entry {number}")  # entry ids are millisecond times: numbered instead
            lines += [
                f"  {_text(field_)} = {_field(field_, value)}" for field_, value in sorted(entry.items())
            ]
        return lines
    if key.type == "string":
        return [_text(_mask(key.value))]
    return [str(key.value)]


def _field(name: bytes, value: bytes) -> str:
    """One hash or stream field's value, decoded where RQ encodes it, then masked."""
    if name in VOLATILE_FIELDS:
        return VOLATILE_FIELDS[name].decode()
    if UNIX_TIME.fullmatch(value):
        return "<time>"
    if name == b"data":  # RQ's job data: zlib-compressed pickle of (function, instance, args, kwargs)
        return repr(pickle.loads(zlib.decompress(value)))
    if name == b"return_value":  # a result's: base64 of a pickle
        return _text(_mask(repr(pickle.loads(base64.b64decode(value))).encode()))
    if name == b"exc_string":  # a result's: base64 of a zlib-compressed traceback
        return _text(_mask(zlib.decompress(base64.b64decode(value))))
    if name == b"meta":  # a job's meta: a pickled dict
        return _text(_mask(repr(_masked_meta(pickle.loads(value))).encode()))
    return _text(_mask(value))


def _masked_meta(value: Any, path: tuple[str, ...] = ()) -> Any:
    if path in VOLATILE_META:
        return VOLATILE_META[path]
    if isinstance(value, dict):
        return {key: _masked_meta(item, (*path, key)) for key, item in value.items()}
    return value


def _mask(value: bytes) -> bytes:
    value = ISO_TIME.sub(b"<time>", value)
    return HEX_ID.sub(b"<execution-id>", value)


def _score(score: float, read_at: float) -> tuple[float, str]:
    """A zset score as (sort key, text)."""
    if score > EPOCH_FLOOR and not math.isinf(score):
        rounded = _rounded(score - read_at)
        return rounded, f"at now{rounded:+d}s~"
    return score, f"score {score:g}"


def _offset(seconds: float) -> str:
    return f"{_rounded(seconds)}s~"


def _rounded(seconds: float) -> int:
    return int(round(seconds / ROUND_S) * ROUND_S)


def _text(value: bytes) -> str:
    text = value.decode(errors="backslashreplace")
    return text.replace("\n", "\n    | ")
