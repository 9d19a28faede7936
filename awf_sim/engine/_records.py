"""What a store holds per instance, typed: its meta record, its step records, its events.

They are TypedDicts: plain dicts at run time (the memory store keeps them without copying, the
SQLite store writes them as JSON, and a dict costs nothing to build or read), with their keys
checked by mypy wherever they are read. A record is never changed in place once committed: a
change is a new dict (`{**rec, "state": "done"}`) handed to `Store.commit`, so a reader holding
the old one is not surprised, and the SQLite store may serialise it later (a deferred commit).

Values that the workflow sees (`params`, `output`, a step's `value`, an event's `payload`) are
kept as the canonical JSON text the engine produced, so they are stored and compared byte for
byte and decoded only when read.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

__all__ = ["ErrorInfo", "EventRecord", "InstanceMeta", "StepRecord"]


# An error as Cloudflare stores it: {"name": its class name, "message": its message}. A plain
# dict type, as `error_of` makes it and timeline entries carry it.
ErrorInfo = dict[str, str]


class InstanceMeta(TypedDict):
    """One instance: what it runs, with what, and where it stands."""

    id: str
    workflow: str  # the workflow's name (registered in the process that recovers it)
    params: str  # JSON text of the event payload it was created with
    # queued, running, paused, waitingForPause, complete, errored, terminated
    status: str
    output: str | None  # JSON text of the workflow's result, once complete
    error: ErrorInfo | None  # once errored
    created_ms: int  # virtual time of creation
    paused_ms: int | None  # when a pause completed (deadlines shift by the paused span)


class StepRecord(TypedDict):
    """One durable call of a lifetime, keyed `kind:name#count` in its instance's steps.

    Every kind has `kind`, `name` and `state` (running, done, failed); the rest depends on it:

    - do: `path`, `count` (the occurrence of the name), `config` (the resolved config, kept
      from the first execution), `attempts` (stored before each attempt runs), `retry_at` (the
      virtual time of the next attempt while a retry waits, else None); done: `value`;
      failed: `error`.
    - sleep: `until` (virtual time it ends); `moment` (true for sleep_until: it ends at a
      moment, not after a span, so a resume does not move it, as Cloudflare's replay asks
      again for the time left until that moment).
    - wait: `type`, `deadline` (virtual time it times out), `timeout_ms` (None when not
      finite), `timeout_text` (the timeout as Cloudflare's message prints it); done: `value`
      (JSON text of {payload, timestamp, type}); failed: `error`.
    """

    kind: str
    name: str
    state: str
    path: NotRequired[str]
    count: NotRequired[int]
    config: NotRequired[Any]  # ResolvedConfig (dsl), JSON-shaped
    attempts: NotRequired[int]
    retry_at: NotRequired[int | None]
    value: NotRequired[str]
    error: NotRequired[ErrorInfo]
    until: NotRequired[int]
    moment: NotRequired[bool]
    type: NotRequired[str | None]
    deadline: NotRequired[int]
    timeout_ms: NotRequired[int | None]  # as passed (may be fractional); None: not finite
    timeout_text: NotRequired[str]


class EventRecord(TypedDict):
    """An event sent to an instance, buffered until a wait of its type consumes it."""

    seq: int  # 0-based, in order of arrival
    type: str
    payload: str  # JSON text
    at_ms: int  # virtual time of arrival
    consumed_by: str | None  # the key of the wait that received it
