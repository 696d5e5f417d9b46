"""What the generated OpenAPI document cannot know from the endpoints' signatures: the
problem documents every operation may answer with, and the Idempotency-Key of POSTs."""

from __future__ import annotations

from typing import Any

from ninja import NinjaAPI

PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details; branch on `code`, show `detail` to people.",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {
            "type": "string",
            "examples": [
                "not_authenticated",
                "token_invalid",
                "token_scope",
                "forbidden",
                "csrf_failed",
                "not_found",
                "state_conflict",
                "validation_failed",
                "too_many_bad_tokens",
                "status_reporter_refused",
            ],
        },
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
PROBLEM_STATUSES = {
    "401": "Not authenticated, or the token is unknown, expired or revoked",
    "403": "The role or the token's scope does not allow this",
    "404": "No such object that you may see",
    "409": "Refused in the current state (e.g. staging moved, locked)",
    "422": "Validation failed; `errors` names the fields",
    "429": "Too many bad tokens from this address",
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Any unique string (a UUID). A retry with the same key answers with what the first request made.",
    "schema": {"type": "string", "maxLength": 200},
}


class ReleaseboardAPI(NinjaAPI):
    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(*args, **kwargs)
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM
        ref = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for item in schema["paths"].values():
            for method, operation in item.items():
                responses = operation.setdefault("responses", {})
                for status, description in PROBLEM_STATUSES.items():
                    responses.setdefault(status, {"description": description, "content": ref})
                if method == "post":
                    operation.setdefault("parameters", []).append(IDEMPOTENCY_KEY)
        return schema
