"""Parameter declarations: one pydantic model per job, the source of its validation and its JSON Schema.

A job's parameters are a `Params` subclass. The server validates with it (`check`), and
`GET /api/jobs` and the OpenAPI document publish its `json_schema`, so the two cannot drift.
Models are strict: `"5"` is not an integer and `true` is not a number, unknown fields and
non-finite numbers are refused. Patterns are anchored (`^...$`) and spelled with explicit ASCII
classes, because JSON Schema's ECMA regexes, pydantic's Rust regexes and Python's `re` read `\\s`,
`\\d`, `.` and a `$` before a final newline differently. A rule JSON Schema cannot state is a
`model_validator` raising `rule_broken(...)`, and the model's docstring (its schema's description)
says it.
"""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import PydanticCustomError
from rq import Retry

# An error answer names at most this many fields.
MAX_ERRORS_NAMED = 3


class BadParams(ValueError):
    """The arguments do not fit the job's declared parameters."""


class Params(BaseModel):
    """Base of every parameter model: strict JSON types, no unknown fields, finite numbers."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


def _integral(value: Any) -> Any:
    # JSON has one number type, and JSON Schema's "integer" accepts 2.0: so does the server.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer as JSON Schema means it (2 and 2.0, never "2" or true), as in
# `Annotated[int, Field(ge=1), JSON_INTEGER]`. It goes after the bounds: placed before them,
# pydantic publishes "ge"/"le" instead of "minimum"/"maximum".
JSON_INTEGER = BeforeValidator(_integral)


def check(model: type[Params], args: Any, what: str = "arguments") -> dict[str, Any]:
    """Return `args` validated by `model`, defaults filled in, as plain JSON-able values.

    Raises:
        BadParams: not a JSON object, or a field that does not fit; the message names the field.
    """
    if not isinstance(args, dict):
        raise BadParams(f"{what} must be a JSON object")
    try:
        return model.model_validate(args).model_dump(mode="json")
    except ValidationError as exc:
        raise BadParams(sentence(exc)) from None


def sentence(exc: ValidationError) -> str:
    """Pydantic's errors as one sentence naming each field: `to[1]: String should match ...`."""
    errors = exc.errors(include_url=False)
    parts = [
        f"{name}: {error['msg']}" if (name := field_name(error["loc"])) else error["msg"]
        for error in errors[:MAX_ERRORS_NAMED]
    ]
    more = len(errors) - MAX_ERRORS_NAMED
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def field_name(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a caller writes it: `to[1]`, `args.steps`."""
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else f".{part}" if name else part
    return name


def rule_broken(message: str) -> PydanticCustomError:
    """The error a cross-field rule raises from a `model_validator` (its message is the answer's)."""
    return PydanticCustomError("rule", message)


class _WithoutFieldTitles(GenerateJsonSchema):
    """Pydantic titles each field after its name ("Step Seconds"): noise beside the name itself."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def json_schema(declared: Any, ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """A model (or any pydantic type) as published: JSON Schema 2020-12, docstrings as descriptions."""
    return TypeAdapter(declared).json_schema(ref_template=ref_template, schema_generator=_WithoutFieldTitles)


@dataclass(frozen=True)
class RetryPolicy:
    """How RQ retries a failed job: at most `max` more attempts, waiting `intervals_s` between."""

    max: int
    intervals_s: tuple[int, ...] = (0,)

    def to_rq(self) -> Retry:
        """RQ's own Retry (its scheduler runs the waits; workers need --with-scheduler)."""
        return Retry(max=self.max, interval=list(self.intervals_s))
