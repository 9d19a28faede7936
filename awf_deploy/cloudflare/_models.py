"""Pydantic models for the Cloudflare v4 envelope and the results the client returns.

Models accept unknown fields (kept in ``model_extra``) and type enum-like fields as ``str``:
Cloudflare adds fields and statuses over time (wrangler already knows an instance status
``unknown`` that the schema lacks), and a deploy must not fail because a read grew a field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ApiMessage",
    "D1Database",
    "D1QueryResult",
    "InstanceCounts",
    "InstanceDetails",
    "InstanceErrorInfo",
    "InstanceInfo",
    "InstanceStatus",
    "InstanceStatusAction",
    "InstanceStatusChange",
    "InstanceTrigger",
    "ResultInfo",
    "Schedule",
    "Script",
    "TokenVerification",
    "UploadedScript",
    "WorkflowInfo",
    "WorkflowSchedule",
]

InstanceStatus = Literal[
    "queued",
    "running",
    "paused",
    "errored",
    "terminated",
    "complete",
    "waitingForPause",
    "waiting",
    "rollingBack",
]
"""The instance statuses the schema lists (``status`` fields are typed ``str`` regardless)."""

InstanceStatusAction = Literal["pause", "resume", "terminate", "restart"]
"""What ``change_instance_status`` can ask for."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)


class ApiMessage(_Model):
    """One entry of an envelope's ``errors`` or ``messages`` list.

    ``code`` is ``None`` for the bare strings that Workflows error bodies put in ``messages``.
    """

    code: int | None = None
    message: str = ""

    def __str__(self) -> str:
        return self.message if self.code is None else f"[{self.code}] {self.message}"


class ResultInfo(_Model):
    page: int | None = None
    per_page: int | None = None
    count: int | None = None
    total_count: int | None = None
    total_pages: int | None = None
    cursor: str | None = None


class Envelope(_Model):
    """The v4 response envelope; ``result`` is parsed by the caller into its own model."""

    success: bool
    errors: list[ApiMessage] = Field(default_factory=list)
    messages: list[ApiMessage] = Field(default_factory=list)
    result: Any = None
    result_info: ResultInfo | None = None

    @field_validator("errors", "messages", mode="before")
    @classmethod
    def _bare_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"message": item} if isinstance(item, str) else item for item in value]
        return value


class TokenVerification(_Model):
    """Result of ``GET /user/tokens/verify``. ``status`` is active, disabled or expired."""

    id: str
    status: str
    expires_on: datetime | None = None
    not_before: datetime | None = None


class UploadedScript(_Model):
    """Result of a script upload."""

    id: str | None = None
    etag: str | None = None
    handlers: list[str] = Field(default_factory=list)
    created_on: datetime | None = None
    modified_on: datetime | None = None
    startup_time_ms: int | None = None
    usage_model: str | None = None


class Script(_Model):
    """A deployed script's content, as ``GET .../workers/scripts/{name}`` returns it.

    The endpoint answers with the raw upload, not an envelope. For a module Worker that is a
    multipart body, which is split into ``modules`` (part name to text); any other body lands
    in ``modules`` under the script's name.
    """

    name: str
    content_type: str
    modules: dict[str, str]


class Schedule(_Model):
    """One cron trigger of a script."""

    cron: str
    created_on: datetime | None = None
    modified_on: datetime | None = None


class WorkflowSchedule(_Model):
    cron: str
    next_instance: str | None = None


class InstanceCounts(_Model):
    queued: int = 0
    running: int = 0
    paused: int = 0
    errored: int = 0
    terminated: int = 0
    complete: int = 0
    waiting: int = 0
    waiting_for_pause: int = Field(default=0, alias="waitingForPause")
    rolling_back: int = Field(default=0, alias="rollingBack")


class WorkflowInfo(_Model):
    """A workflow as PUT, GET and list return it (PUT adds ``version_id``, reads add counts)."""

    id: str
    name: str
    script_name: str
    class_name: str
    created_on: datetime | None = None
    modified_on: datetime | None = None
    triggered_on: datetime | None = None
    version_id: str | None = None
    instances: InstanceCounts | None = None
    schedules: list[WorkflowSchedule] = Field(default_factory=list)


class InstanceInfo(_Model):
    """An instance as create and list return it."""

    id: str
    status: str
    version_id: str | None = None
    workflow_id: str | None = None
    trigger_source: str | None = None
    created_on: datetime | None = None
    modified_on: datetime | None = None
    started_on: datetime | None = None
    ended_on: datetime | None = None


class InstanceErrorInfo(_Model):
    name: str = ""
    message: str = ""


class InstanceTrigger(_Model):
    source: str | None = None


class InstanceDetails(_Model):
    """``GET .../instances/{id}``: status, input, output, error and the step log.

    The time fields stay strings because the schema gives them no format.
    """

    status: str
    params: Any = None
    output: Any = None
    error: InstanceErrorInfo | None = None
    queued: str | None = None
    start: str | None = None
    end: str | None = None
    success: bool | None = None
    version_id: str | None = Field(default=None, alias="versionId")
    step_count: int | None = None
    steps: list[dict[str, Any]] = Field(default_factory=list)
    trigger: InstanceTrigger | None = None


class InstanceStatusChange(_Model):
    status: str
    timestamp: datetime


class D1Database(_Model):
    """A D1 database as list and create return it."""

    uuid: str
    name: str
    version: str | None = None
    created_at: datetime | None = None


class D1QueryResult(_Model):
    """One statement's result of ``POST .../d1/database/{id}/query``."""

    results: list[dict[str, Any]] = Field(default_factory=list)
    success: bool = True
    meta: dict[str, Any] = Field(default_factory=dict)
