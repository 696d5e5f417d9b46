"""The OpenAPI document is valid, served, and names every route, its auth and problems."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db


def api_routes() -> set[str]:
    """Every concrete API URL pattern Django serves under api/v1/ (not the docs)."""

    def walk(resolver: URLResolver, prefix: str) -> list[str]:
        found = []
        for pattern in resolver.url_patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                found += walk(pattern, route)
            elif isinstance(pattern, URLPattern):
                found.append(route)
        return found

    routes = {r for r in walk(get_resolver(), "") if r.startswith("api/v1/")}
    return routes - {"api/v1/", "api/v1/openapi.json", "api/v1/docs"}


def test_the_served_schema_is_valid_openapi_and_lists_every_route(client: Client) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    validate(schema)
    assert schema["openapi"].startswith("3.1")
    documented = {
        "api/v1/" + path.removeprefix("/api/v1/").replace("{", "<").replace("}", ">") for path in schema["paths"]
    }
    served = {route.replace("<int:", "<") for route in api_routes()}
    assert served == documented
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            assert operation.get("security"), f"{method} {path} is documented without authentication"
            assert operation["responses"]["403"]["content"]["application/problem+json"], f"{method} {path}"
            if method == "post":
                assert "Idempotency-Key" in [p["name"] for p in operation["parameters"]], f"{method} {path}"
    schemes = schema["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}


def test_the_interactive_docs_are_served_from_our_own_static_files(client: Client) -> None:
    """Under the Content-Security-Policy (script-src 'self') a CDN script would not run."""
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<script src="/static/ninja/swagger-ui-bundle.js">' in html and "cdn" not in html
