"""create_test_context: a `ctx` for unit-testing one handler, outside any workflow."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

from awf_sim.engine._world import check_db, check_env
from awf_sim.sdk._context import HandlerContext

__all__ = ["createTestContext", "create_test_context"]


def create_test_context(
    db: Any = None,
    ai: Any = None,
    http: Any = None,
    env: Mapping[str, Any] | None = None,
) -> HandlerContext:
    """A `ctx` for calling one handler directly: `await Inventory.check(product, {}, ctx)`.

    `db` is a Database spec (connected on first use of `ctx.db`) or an open handle; the step is
    {"name": "test", "path": "test", "count": 1}, attempt 1.
    """
    # As in the simulator: ctx.ai answers deterministically unless a provider is given, and
    # ctx.http reaches only the given mock; both record their calls (here, in a private log).
    from awf_sim.sdk._ai import AIClient, DeterministicAI
    from awf_sim.sdk._effects import EffectLog
    from awf_sim.sdk._http import make_http_client

    check_db(db, "create_test_context")
    check_env(env, "create_test_context")
    log = EffectLog()
    factory = None
    handle = None
    if db is not None:
        if hasattr(db, "connect"):
            factory = _lazy_connect(db)
        else:
            handle = db
    return HandlerContext(
        instance_id="test-instance",
        step={"name": "test", "path": "test", "count": 1},
        attempt=1,
        env=dict(env or {}),
        db=handle,
        db_factory=factory,
        ai_factory=lambda: AIClient(ai if ai is not None else DeterministicAI(0), log),
        http_factory=lambda: make_http_client(http, log),
    )


createTestContext = create_test_context


def _lazy_connect(spec: Any) -> Any:
    """A db factory for a test ctx; the connection it opens is closed with the ctx."""
    opened: list[Any] = []

    def factory() -> Any:
        handle = spec.connect()
        opened.append(handle)
        return handle

    weakref.finalize(factory, _close_all, opened)
    return factory


def _close_all(handles: list[Any]) -> None:
    for handle in handles:
        handle.close()
