"""Declared job parameters: types, bounds and defaults, checked and described as JSON Schema."""

import math
import re
from dataclasses import dataclass
from typing import Any

from rq import Retry

REQUIRED = object()


class BadParams(ValueError):
    """The arguments do not fit the job's declared parameters."""


@dataclass(frozen=True)
class Param:
    """One declared job parameter: its type, bounds and default."""

    type: type
    default: Any = REQUIRED
    min: float | None = None
    max: float | None = None
    description: str = ""
    # For lists: the type of each item. Bounds of strings and lists apply to their length.
    items: type | None = None
    pattern: str | None = None

    def check(self, name: str, value: Any) -> Any:
        """Return `value` if it fits, else raise BadParams naming the parameter."""
        if value is None and self.default is None:
            return None
        if not _is_instance(value, self.type):
            raise BadParams(f"{name} must be {_type_name(self.type)}, not {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise BadParams(f"{name} must be a finite number")
        if isinstance(value, str | list):
            _check_length(
                name, len(value), self.min, self.max, "item" if isinstance(value, list) else "character"
            )
        else:
            _check_bounds(name, value, self.min, self.max)
        if isinstance(value, list) and self.items is not None:
            for index, item in enumerate(value):
                Param(self.items, pattern=self.pattern).check(f"{name}[{index}]", item)
        elif isinstance(value, str) and self.pattern and not re.fullmatch(self.pattern, value):
            raise BadParams(f"{name} is not valid: {value[:80]!r}")
        return value

    def schema(self) -> dict[str, Any]:
        """The parameter as a JSON Schema (for `GET /api/jobs` and the OpenAPI document)."""
        schema: dict[str, Any] = {"type": _JSON_TYPES[self.type]}
        if self.type in (str, list):
            names = ("minLength", "maxLength") if self.type is str else ("minItems", "maxItems")
        else:
            names = ("minimum", "maximum")
        for bound_name, bound in zip(names, (self.min, self.max), strict=True):
            if bound is not None:
                schema[bound_name] = bound
        if self.items is not None:
            schema["items"] = {"type": _JSON_TYPES[self.items]}
            if self.pattern:
                schema["items"]["pattern"] = self.pattern
        elif self.pattern:
            schema["pattern"] = self.pattern
        if self.default is not REQUIRED:
            schema["default"] = self.default
            if self.default is None:
                schema["type"] = [schema["type"], "null"]
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True)
class RetryPolicy:
    """How RQ retries a failed job: at most `max` more attempts, waiting `intervals_s` between."""

    max: int
    intervals_s: tuple[int, ...] = (0,)

    def to_rq(self) -> Retry:
        """RQ's own Retry (its scheduler runs the waits; workers need --with-scheduler)."""
        return Retry(max=self.max, interval=list(self.intervals_s))


def _check_bounds(name: str, value: float, low: float | None, high: float | None) -> None:
    if low is not None and value < low:
        raise BadParams(f"{name} must be at least {low:g}")
    if high is not None and value > high:
        raise BadParams(f"{name} must be at most {high:g}")


def _check_length(name: str, length: int, low: float | None, high: float | None, unit: str) -> None:
    if low is not None and length < low:
        raise BadParams(f"{name} must have at least {low:g} {unit}{'s' if low != 1 else ''}")
    if high is not None and length > high:
        raise BadParams(f"{name} must have at most {high:g} {unit}{'s' if high != 1 else ''}")


def _is_instance(value: Any, expected: type) -> bool:
    if isinstance(value, bool) and expected is not bool:
        return False
    if expected is float:
        return isinstance(value, int | float)
    return isinstance(value, expected)


def _type_name(expected: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list"}.get(
        expected, expected.__name__
    )


_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", list: "array"}
