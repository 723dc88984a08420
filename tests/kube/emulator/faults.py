"""Fault injection: a rule that makes the Nth matching request answer an error."""

from __future__ import annotations

from dataclasses import dataclass, field

import kmock
from kmock._internal import enums, rendering


@dataclass
class Fault:
    """Answer ``status`` to the ``nth`` (1-based) matching request, ``times`` times in a row."""

    method: str | None = None  # GET/POST/PATCH/PUT/DELETE, None for any
    resource: str | None = None  # e.g. "batch/v1/jobs", "v1/pods"; None for any
    subresource: str | None = None  # e.g. "status"; "" for main-object requests only
    name: str | None = None
    watch: bool | None = None  # True: only watch requests; False: no watch requests
    status: int = 500
    reason: str = "InternalError"
    message: str = "injected fault"
    nth: int = 1
    times: int = 1
    seen: int = 0
    fired: int = 0
    requests: list[str] = field(default_factory=list)

    def matches(self, request: rendering.Request) -> bool:
        if self.method and request.method.value.upper() != self.method.upper():
            return False
        if self.resource is not None and (
            request.resource is None or kmock.resource(self.resource) != request.resource
        ):
            return False
        if self.subresource is not None and (request.subresource or "") != self.subresource:
            return False
        if self.name is not None and request.name != self.name:
            return False
        is_watch = request.action == enums.action.WATCH
        return self.watch is None or self.watch == is_watch

    def check(self, request: rendering.Request) -> bool:
        if not self.matches(request):
            return False
        self.seen += 1
        if self.seen >= self.nth and self.fired < self.times:
            self.fired += 1
            self.requests.append(f"{request.method.value} {request.url.path_qs}")
            return True
        return False
