"""Route state built once per test process instead of once per app (FastAPI >= 0.165).

FastAPI builds the state of an included route (its ``Dependant``, request-body and response
``ModelField``s, a pydantic ``TypeAdapter`` each) for every app that includes the router, on
the app's first request. The in-process tests build a fresh app for nearly every test, and on
the suite's two cores that build took 0.3-1 s per app, more than most tests themselves: about
half of the suite's time. Our routers are module-level objects and ``create_app`` includes
them the same way every time, so the state built for one app is the state any other would
build.

:func:`share_route_state` keeps the state built for (route, inclusion) and hands later apps a
copy of it with their own ``dependency_overrides_provider`` and their own request handler,
built from that state exactly as FastAPI builds it, so each app still dispatches to its own
``app.dependency_overrides`` and its own ``request.app.state``. An inclusion that differs in
anything (prefix, tags, dependencies, responses, body-size or form limits, ...) is built anew.
Where FastAPI's private names are absent (another version), nothing is patched: the suite is
then only slower.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

__all__ = ["share_route_state"]


@contextmanager
def share_route_state() -> Iterator[bool]:
    """Patch FastAPI for the duration; yields whether it could (False on other versions)."""
    from fastapi import routing

    context_cls: Any = getattr(routing, "_EffectiveRouteContext", None)
    context_var: Any = getattr(routing, "_effective_route_context_var", None)
    body_limit: Any = getattr(routing, "wrap_app_with_body_limit", None)
    if context_cls is None or context_var is None or body_limit is None:
        yield False
        return
    if not dataclasses.is_dataclass(context_cls) or not hasattr(context_cls, "from_api_route"):
        yield False
        return
    build = context_cls.from_api_route
    # id(route) -> [(route, its inclusion without the overrides provider, the state built)]
    built: dict[int, list[tuple[Any, Any, Any]]] = {}

    def from_api_route(_cls: Any, *, original_route: Any, include_context: Any) -> Any:
        provider = include_context.dependency_overrides_provider
        inclusion = dataclasses.replace(include_context, dependency_overrides_provider=None)
        entries = built.setdefault(id(original_route), [])
        for route, seen_inclusion, state in entries:
            if route is original_route and seen_inclusion == inclusion:
                context = copy.copy(state)
                context.dependency_overrides_provider = provider
                # As FastAPI's from_api_route does: the handler reads the context's state.
                token = context_var.set(context)
                try:
                    context.app = body_limit(
                        routing.request_response(original_route.get_route_handler()),
                        context.max_body_size,
                    )
                finally:
                    context_var.reset(token)
                return context
        context = build(original_route=original_route, include_context=include_context)
        entries.append((original_route, inclusion, context))
        return context

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(context_cls, "from_api_route", classmethod(from_api_route))
        yield True
