"""Permission names, organization slugs and role graphs: the pure rules of issue 12 (RBAC).

- Permission strings are ``resource:action`` (lowercase ``a-z0-9`` and hyphens on both sides),
  drawn from :data:`PERMISSIONS`; ``*`` stands for every permission, present and future
  (NIST SP 800-162 calls such a grant an "all actions" attribute; we keep it as a wildcard
  rather than expanding it, so an owner also holds permissions added in later releases).
- Slugs follow the DNS label rule (RFC 1035 section 2.3.1, lower-cased): ``a-z0-9`` and
  hyphens, 2-63 characters, no hyphen at either end.
- A role's permissions are its own plus those of every role it includes, transitively
  (NIST RBAC, ANSI INCITS 359-2004 section 6.2, "general role hierarchies"); the include graph
  must stay acyclic, and a cycle is reported by naming it.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping

__all__ = [
    "ALL",
    "PERMISSIONS",
    "InvalidPermission",
    "allows",
    "close_permissions",
    "derive_slug",
    "expand",
    "find_cycle",
    "is_slug",
    "validate_permissions",
]

ALL = "*"
PERMISSIONS: tuple[str, ...] = (
    "models:invoke",
    "models:fine-tune",
    "models:read",
    "models:manage",
    "keys:create",
    "keys:read",
    "keys:revoke",
    "keys:verify",
    "members:read",
    "members:manage",
    "roles:manage",
    "groups:manage",
    "projects:manage",
    "service-accounts:manage",
    "org:manage",
    "audit:read",
    "access:evaluate",
    "policies:read",
    "policies:manage",
)
_KNOWN = frozenset(PERMISSIONS)
_PERMISSION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*:[a-z0-9]+(?:-[a-z0-9]+)*")
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
SLUG_MAX = 63


class InvalidPermission(ValueError):
    """A permission name that is malformed or not in the catalog."""


def close_permissions(name: str) -> list[str]:
    """Catalog entries that look like ``name`` (for "did you mean")."""
    return difflib.get_close_matches(name.lower(), PERMISSIONS, n=3, cutoff=0.6)


def validate_permissions(names: Iterable[str]) -> frozenset[str]:
    """The set of ``names`` if each is ``*`` or a catalog entry; raise naming the first bad
    one, with close matches."""
    seen: set[str] = set()
    for name in names:
        if name == ALL or name in _KNOWN:
            seen.add(name)
            continue
        if not _PERMISSION.fullmatch(name):
            shape = "expected resource:action in lowercase a-z, 0-9 and hyphens"
            problem = f"malformed permission {name[:80]!r} ({shape})"
        else:
            problem = f"unknown permission {name!r}"
        near = close_permissions(name)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise InvalidPermission(problem + hint)
    return frozenset(seen)


def allows(permissions: frozenset[str] | set[str], permission: str) -> bool:
    """Whether a set of effective permissions grants ``permission`` (``*`` grants all)."""
    return ALL in permissions or permission in permissions


def is_slug(value: str) -> bool:
    return len(value) >= 2 and _SLUG.fullmatch(value) is not None


def derive_slug(name: str) -> str:
    """A slug from a display name: ASCII-folded, lower-cased, runs of anything else made one
    hyphen, trimmed to 63; ``"org"`` when nothing usable is left (callers dedupe)."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:SLUG_MAX].rstrip("-")
    return slug if len(slug) >= 2 else "org"


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle of the include graph as a path that returns to its start (``[a, b, a]``), or
    None. Iterative depth-first search (no recursion limit on deep graphs)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for root in sorted(edges):
        if state.get(root):
            continue
        path: list[str] = [root]
        stack: list[list[str]] = [sorted(edges.get(root, ()))]
        state[root] = 1
        while stack:
            children = stack[-1]
            if not children:
                stack.pop()
                state[path.pop()] = 2
                continue
            child = children.pop()
            mark = state.get(child)
            if mark == 1:
                return [*path[path.index(child) :], child]
            if mark is None:
                state[child] = 1
                path.append(child)
                stack.append(sorted(edges.get(child, ())))
    return None


def expand(
    roles: Iterable[str],
    own: Mapping[str, frozenset[str]],
    includes: Mapping[str, Iterable[str]],
) -> frozenset[str]:
    """The union of the permissions of ``roles`` and of every role they include, transitively
    (unknown roles contribute nothing; a cycle, never stored, would not loop)."""
    seen: set[str] = set()
    todo = list(roles)
    permissions: set[str] = set()
    while todo:
        role = todo.pop()
        if role in seen:
            continue
        seen.add(role)
        permissions |= own.get(role, frozenset())
        todo.extend(includes.get(role, ()))
    return frozenset(permissions)
