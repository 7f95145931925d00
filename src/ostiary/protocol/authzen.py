"""Request parsing for the OpenID AuthZEN Authorization API 1.0 (pure; no I/O).

- Access Evaluation request (section 6.1): ``subject`` (``type``, ``id``, optional
  ``properties``), ``action`` (``name``, optional ``properties``), ``resource`` (``type``,
  ``id``, optional ``properties``) and an optional ``context`` object (sections 5.1-5.4).
- Access Evaluations request (section 7.1): the same four at the top level as defaults, an
  ``evaluations`` array whose items override them member by member (7.1.1), and
  ``options.evaluations_semantic`` (7.1.2.1): ``execute_all`` (the default),
  ``deny_on_first_deny`` or ``permit_on_first_permit``. Without ``evaluations`` (or with an
  empty one) the request is a single evaluation and answers as one (7.1).
- Anything else is refused with the JSON pointer of the first bad member; the caller maps it to
  a 400 (section 12 leaves error bodies open; we use ``{"error", "error_description"}``).

Values are also made safe for Cedar (Cedar policy language, "Entities and context" JSON
format): entity types must be Cedar names; ``properties`` and ``context`` may hold strings,
integers in Cedar's Long range, booleans, arrays (Cedar sets) and objects (records). Floats are
refused (Cedar has no floating-point type); ``null`` members are dropped (Cedar has no null; an
absent attribute is what ``has`` tests); members whose name starts with ``__`` are refused,
because Cedar reads ``__entity`` and ``__extn`` as entity references and extension values,
which would let a request forge membership in a role.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "MAX_EVALUATIONS",
    "SEMANTICS",
    "Action",
    "AuthzenError",
    "BatchRequest",
    "Entity",
    "Evaluation",
    "Semantic",
    "is_cedar_name",
    "parse_evaluation",
    "parse_evaluations",
]

Semantic = Literal["execute_all", "deny_on_first_deny", "permit_on_first_permit"]
SEMANTICS: tuple[Semantic, ...] = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")
MAX_EVALUATIONS = 100
MAX_ID = 500
MAX_TYPE = 100
MAX_DEPTH = 8
MAX_STRING = 10_000
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_NAME = re.compile(rf"{_IDENT}(?:::{_IDENT})*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # C0 controls and DEL
# Cedar's reserved identifiers (Cedar policy grammar, "IDENT"): not usable as type names.
_RESERVED = frozenset(
    {"true", "false", "if", "then", "else", "in", "is", "like", "has", "permit", "forbid"}
    | {"when", "unless", "principal", "action", "resource", "context", "__cedar"}
)


class AuthzenError(ValueError):
    """A malformed request: ``pointer`` is the JSON pointer (RFC 6901) of the bad member."""

    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(f"{pointer or '/'}: {message}")
        self.pointer = pointer
        self.message = message


# The value objects of a decision are not frozen: a frozen dataclass's __init__ sets each field
# through object.__setattr__, about three times the cost (0.44 against 0.15 µs for three
# fields), and a batch of ten decisions builds about seventy of them. Nothing changes them
# after they are built; they are not hashed.
@dataclass(slots=True)
class Entity:
    type: str
    id: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)  # not frozen: see Entity
class Action:
    name: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)  # not frozen: see Entity
class Evaluation:
    subject: Entity
    action: Action
    resource: Entity
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)  # not frozen: see Entity
class BatchRequest:
    evaluations: list[Evaluation]
    semantic: Semantic
    single: bool  # no ``evaluations`` array: answer as one evaluation


@functools.lru_cache(maxsize=1024)
def is_cedar_name(value: str) -> bool:
    """A Cedar entity type name: identifiers joined by ``::``, none of them reserved.
    Remembered: requests name the same few types again and again."""
    return (
        len(value) <= MAX_TYPE
        and _NAME.fullmatch(value) is not None
        and not any(part in _RESERVED for part in value.split("::"))
    )


def _value(value: Any, pointer: str, depth: int) -> Any:
    """A JSON value as Cedar can take it, or AuthzenError; None for a member to drop."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not LONG_MIN <= value <= LONG_MAX:
            raise AuthzenError(pointer, "integer out of range")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise AuthzenError(pointer, f"string longer than {MAX_STRING}")
        return value
    if isinstance(value, float):
        raise AuthzenError(pointer, "numbers must be integers (Cedar has no floating point)")
    if depth >= MAX_DEPTH:
        raise AuthzenError(pointer, f"nested deeper than {MAX_DEPTH}")
    if isinstance(value, list):
        items = [_value(item, f"{pointer}/{i}", depth + 1) for i, item in enumerate(value)]
        return [item for item in items if item is not None]
    if isinstance(value, dict):
        return _record(value, pointer, depth + 1)
    raise AuthzenError(pointer, "unsupported value")


def _record(value: Any, pointer: str, depth: int = 0) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise AuthzenError(pointer, "must be an object")
    record: dict[str, Any] = {}
    for key, item in value.items():
        escaped = str(key).replace("~", "~0").replace("/", "~1")
        where = f"{pointer}/{escaped}"
        if key.startswith("__"):
            raise AuthzenError(where, "member names starting with __ are reserved")
        if len(key) > MAX_TYPE:
            raise AuthzenError(where, f"member name longer than {MAX_TYPE}")
        converted = _value(item, where, depth)
        if converted is not None:
            record[key] = converted
    return record


def _string(obj: dict[str, Any], key: str, pointer: str, limit: int) -> str:
    value = obj.get(key)
    if isinstance(value, str) and value and len(value) <= limit and not _CONTROL.search(value):
        return value
    where = f"{pointer}/{key}"
    if value is None:
        raise AuthzenError(where, "is required")
    if not isinstance(value, str) or not value:
        raise AuthzenError(where, "must be a non-empty string")
    if len(value) > limit:
        raise AuthzenError(where, f"longer than {limit}")
    raise AuthzenError(where, "must not contain control characters")


def _properties(obj: dict[str, Any], pointer: str) -> dict[str, Any]:
    raw = obj.get("properties")
    return {} if raw is None else _record(raw, f"{pointer}/properties")


def _entity(value: Any, pointer: str) -> Entity:
    if not isinstance(value, dict):
        raise AuthzenError(pointer, "must be an object with type and id")
    kind = _string(value, "type", pointer, MAX_TYPE)
    if not is_cedar_name(kind):
        raise AuthzenError(
            f"{pointer}/type",
            "must be letters, digits and _ (not starting with a digit), '::'-separated, "
            "and not a Cedar keyword",
        )
    return Entity(kind, _string(value, "id", pointer, MAX_ID), _properties(value, pointer))


def _action(value: Any, pointer: str) -> Action:
    if not isinstance(value, dict):
        raise AuthzenError(pointer, "must be an object with name")
    return Action(_string(value, "name", pointer, MAX_TYPE), _properties(value, pointer))


def _context(value: Any, pointer: str) -> dict[str, Any]:
    return {} if value is None else _record(value, pointer)


def parse_evaluation(body: Any) -> Evaluation:
    """An Access Evaluation request (section 6.1)."""
    if not isinstance(body, dict):
        raise AuthzenError("", "the request body must be a JSON object")
    return Evaluation(
        _entity(body.get("subject"), "/subject"),
        _action(body.get("action"), "/action"),
        _entity(body.get("resource"), "/resource"),
        _context(body.get("context"), "/context"),
    )


def parse_evaluations(body: Any) -> BatchRequest:
    """An Access Evaluations request (section 7.1): each item of ``evaluations`` with the
    top-level members as defaults (an item's member replaces the default whole)."""
    if not isinstance(body, dict):
        raise AuthzenError("", "the request body must be a JSON object")
    semantic: Semantic = "execute_all"
    options = body.get("options")
    if options is not None:
        if not isinstance(options, dict):
            raise AuthzenError("/options", "must be an object")
        chosen = options.get("evaluations_semantic", "execute_all")
        if chosen not in SEMANTICS:
            raise AuthzenError(
                "/options/evaluations_semantic", f"must be one of {', '.join(SEMANTICS)}"
            )
        semantic = chosen
    items = body.get("evaluations")
    if items is None or items == []:
        return BatchRequest([parse_evaluation(body)], semantic, single=True)
    if not isinstance(items, list):
        raise AuthzenError("/evaluations", "must be an array")
    if len(items) > MAX_EVALUATIONS:
        raise AuthzenError("/evaluations", f"at most {MAX_EVALUATIONS} items")
    parsed: list[Evaluation] = []
    for i, item in enumerate(items):
        pointer = f"/evaluations/{i}"
        if not isinstance(item, dict):
            raise AuthzenError(pointer, "must be an object")

        def pick(key: str, at: str = pointer, it: dict[str, Any] = item) -> tuple[Any, str]:
            if it.get(key) is not None:
                return it[key], f"{at}/{key}"
            return body.get(key), f"/{key}"

        subject, subject_at = pick("subject")
        action, action_at = pick("action")
        resource, resource_at = pick("resource")
        context, context_at = pick("context")
        parsed.append(
            Evaluation(
                _entity(subject, subject_at),
                _action(action, action_at),
                _entity(resource, resource_at),
                _context(context, context_at),
            )
        )
    return BatchRequest(parsed, semantic, single=False)
