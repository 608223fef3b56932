"""OpenAPI 3.1 generated from the endpoint table and its pydantic models."""
from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from posint_common.contracts.problem import Problem

from gateway.http import idempotency
from gateway.http.docs import add_docs_routes, docs_paths
from gateway.http.endpoints import API_PREFIX, ENDPOINTS, Endpoint
from gateway.http.middleware import PUBLIC_ROUTES_KEY

REF = "#/components/schemas/{model}"
ERROR_RESPONSES = {
    "400": "Not valid HTTP, malformed JSON, or a body on a method that takes none",
    "401": "Missing or invalid API key",
    "403": "The API key lacks the scope this method needs ('write' for anything but GET and HEAD)",
    "413": "Request body too large",
    "422": "Validation failed: a bad value, or an unknown or repeated query parameter (each named in errors)",
    "429": "Rate limit or in-flight limit of the API key reached (see Retry-After)",
    "431": "Request line or a header field too large",
    "503": "Broker or owning service unreachable, or the gateway holds too many waiting requests (see Retry-After)",
    "504": "The owning service did not answer in time",
}

RATE_LIMIT_HEADERS = {
    name: {"description": text, "schema": {"type": "string" if name == "RateLimit-Policy" else "integer"}}
    for name, text in (
        ("RateLimit-Limit", "Requests this key may send at once (the token bucket's size)"),
        ("RateLimit-Remaining", "Requests left right now"),
        ("RateLimit-Reset", "Seconds until the bucket is full again"),
        ("RateLimit-Policy", "'<burst>;w=<seconds to refill>'"),
    )
}


def _schema(model: type[BaseModel], components: dict) -> dict:
    schema = model.model_json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def _parameters(endpoint: Endpoint) -> list[dict]:
    parameters = []
    for where, model in (("path", endpoint.path_params), ("query", endpoint.params)):
        schema = model.model_json_schema() if model else {}
        for name, prop in schema.get("properties", {}).items():
            parameters.append(
                {"name": name, "in": where, "required": where == "path" or name in schema.get("required", []),
                 "description": prop.get("description", ""), "schema": {k: v for k, v in prop.items() if k != "description"}}
            )
    missing = set(_path_names(endpoint.path)) - {p["name"] for p in parameters if p["in"] == "path"}
    if missing:
        raise TypeError(f"{endpoint.summary}: path parameters {sorted(missing)} are not in its PathParams model")
    return parameters


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def _operation(endpoint: Endpoint, components: dict) -> dict:
    problem = {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}}
    success: dict = {"description": endpoint.summary}
    if endpoint.response:
        success["content"] = {"application/json": {"schema": _schema(endpoint.response, components)}}
    operation = {
        "summary": endpoint.summary,
        "operationId": endpoint.handle.__name__,
        "parameters": _parameters(endpoint),
        "responses": {str(endpoint.status): success}
        | {status: {"description": text, "content": problem}
           for status, text in sorted({**ERROR_RESPONSES, **{str(k): v for k, v in endpoint.errors.items()}}.items())},
    }
    if idempotency.applies(endpoint.method, endpoint.auth):  # every POST with a key takes an Idempotency-Key
        operation["parameters"].append({"name": idempotency.HEADER, "in": "header", "required": False,
                                        "description": idempotency.DESCRIPTION,
                                        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"}})
        conflict = operation["responses"].setdefault("409", {"description": "", "content": problem})
        conflict["description"] = "; or ".join(filter(None, [conflict["description"], "a request with this Idempotency-Key is still running"]))
        operation["responses"]["422"]["description"] += " (or: this Idempotency-Key was used with a different request)"
        success.setdefault("headers", {})[idempotency.REPLAYED_HEADER] = {
            "description": "'true' when this is the kept response of an earlier request with the same Idempotency-Key",
            "schema": {"type": "string", "enum": ["true"]}}
    if endpoint.auth:  # per-key limits (gateway.http.limits): these headers are on every answer to a keyed request
        success.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)
    if endpoint.body:
        operation["requestBody"] = {"required": not endpoint.body_optional, "content": {"application/json": {"schema": _schema(endpoint.body, components)}}}
    operation["security"] = [{"bearer": []}] if endpoint.auth else []  # auth=False: the service checks a signature instead
    return operation


def build_document() -> dict:
    components: dict = {}
    _schema(Problem, components)
    paths: dict = {}
    for endpoint in ENDPOINTS:
        paths.setdefault(API_PREFIX + endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint, components)
    paths[API_PREFIX + "/openapi.json"] = {
        "get": {"summary": "This document", "operationId": "openapi", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1 document", "content": {"application/json": {"schema": {"type": "object"}}}}}}
    }
    paths.update(docs_paths(API_PREFIX, {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}}))
    return {
        "openapi": "3.1.0",
        "info": {"title": "posint Integrations API", "version": "1.0.0", "description": "Third-party integrations, webhooks, and external orders"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "Tenant API key"}},
        },
    }


def add_openapi_route(app: web.Application) -> None:
    document = build_document()

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get(API_PREFIX + "/openapi.json", openapi)
    public = add_docs_routes(app, API_PREFIX, API_PREFIX + "/openapi.json")  # no key, like the document itself
    app[PUBLIC_ROUTES_KEY] = app.get(PUBLIC_ROUTES_KEY, frozenset()) | frozenset(public)
