"""POST /api/v1/sites/{site_id}/query: metrics by dimensions, filtered, bucketed and paged.

The handler reads the raw body and decodes it itself (pulse.stats.query), so that every
refusal is a 400 `{"error", "at"}` naming the part of the body at fault; the OpenAPI
operation below describes that body from the same msgspec type.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import Operation
from litestar.params import FromPath

from pulse.dashboard.session import api_scope
from pulse.stats.errors import QueryError
from pulse.stats.query import StatsQuery, decode
from pulse.stats.query_result import QueryResult
from pulse.stats.query_service import StatsQueries
from pulse.stats.service import StatsService
from pulse.tenancy import TenantScope

EXAMPLE = {
    "metrics": ["visitors", "pageviews", "bounce_rate"],
    "dimensions": ["page"],
    "filters": [["country", "is", ["FR", "BE"]], ["page", "matches", ["^/blog/"]]],
    "date_range": {"from": "2025-03-01", "to": "2025-03-31"},
    "timezone": "Europe/Paris",
    "order_by": [["visitors", "desc"]],
    "limit": 10,
}


class QueryRefusal(msgspec.Struct, frozen=True):
    error: str
    at: str


def query_refused(_: Request[Any, Any, State], exc: QueryError) -> Response[QueryRefusal]:
    return Response(QueryRefusal(error=exc.message, at=exc.at), status_code=400)


def _inlined(kind: type[msgspec.Struct]) -> dict[str, Any]:
    """The struct's JSON Schema with its nested structs written in place, not referenced."""
    (root,), components = msgspec.json.schema_components([kind])

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                return inline(copy.deepcopy(components[ref.rsplit("/", 1)[-1]]))
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    schema: dict[str, Any] = inline(root)
    return schema


def _answer(description: str, kind: type[msgspec.Struct]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _inlined(kind)}}}


class _Failure(msgspec.Struct, frozen=True):
    error: str


@dataclass
class _QueryOperation(Operation):
    def to_schema(self) -> dict[str, Any]:
        schema = super().to_schema()
        schema["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _inlined(StatsQuery), "example": EXAMPLE}},
        }
        schema.setdefault("responses", {}).update(
            {
                "400": _answer(
                    "The query is not valid: `error` says why, `at` names the part of the body at "
                    "fault (metrics[1], filters[0][2], date_range.to), `$` for the body as a whole.",
                    QueryRefusal,
                ),
                "401": _answer("No bearer token, or one that is not valid.", _Failure),
                "403": _answer("The token lacks the stats:read permission.", _Failure),
                "404": _answer("No such site for this tenant.", _Failure),
                "503": _answer(
                    "The analytics store cannot answer right now; retry after Retry-After.", _Failure
                ),
            }
        )
        return schema


class QueryController(Controller):
    path = "/api/v1/sites/{site_id:str}/query"
    tags = ["stats"]
    dependencies = {"tenant": Provide(api_scope)}

    @post(
        "/",
        status_code=200,
        summary="Query the site's stats (stats:read)",
        description="Metrics grouped by dimensions, filtered, over a date range in a timezone, "
        "ordered and paged. See the request body's schema for every name.",
        operation_class=_QueryOperation,
    )
    async def query(
        self,
        request: Request[Any, Any, State],
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        stats: NamedDependency[StatsService],
        stats_queries: NamedDependency[StatsQueries],
    ) -> QueryResult:
        tenant.require("stats:read")
        site = await stats.site(tenant, site_id)
        return await stats_queries.run(tenant, site, decode(await request.body()))
