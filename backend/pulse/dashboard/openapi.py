"""The stats API's OpenAPI document at a URL that stays put as the API grows: /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.datastructures import State


@get("/api/v1/openapi.json", include_in_schema=False, sync_to_thread=False)
def openapi_json(request: Request[Any, Any, State]) -> dict[str, Any]:
    return request.app.openapi_schema.to_schema()
