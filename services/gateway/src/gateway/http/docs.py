"""GET /api/v1/docs: the OpenAPI document as a browsable Swagger UI page, with "Authorize" for a
bearer key and "Try it out" against this gateway.

Swagger UI's files come from the swagger-ui-py wheel (pinned in constraints.txt): nothing is loaded
from a CDN, and the Content-Security-Policy keeps the page from reaching any other origin. Only the
files the page uses are served (not the wheel's whole static folder, whose stock initializer points
elsewhere); the initializer is ours and external, so no inline script is needed."""
from __future__ import annotations

from importlib.resources import files

from aiohttp import web

DOCS_PATH = "/docs"
INIT_JS = "init.js"  # ours; the other assets come from the wheel
ASSETS = {INIT_JS: "text/javascript", "swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript",
          "favicon-32x32.png": "image/png"}
STATIC = files("swagger_ui") / "static"
# Everything comes from this gateway and nothing leaves it (the browser test fails on any violation).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>posint Integrations API reference</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/init.js"></script>
</body>
</html>
"""
# validatorUrl null: Swagger UI would otherwise send the document to an outside validator.
INIT = """window.ui = SwaggerUIBundle({{
  url: "{openapi}",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: false,
  displayRequestDuration: true,
  presets: [SwaggerUIBundle.presets.apis],
}});
"""


def docs_paths(prefix: str, problem: dict) -> dict:
    """The page's and its assets' entries in the OpenAPI document (no key needed)."""
    return {
        prefix + DOCS_PATH: {"get": {
            "summary": "This API reference as a browsable page (Swagger UI)", "operationId": "docs", "security": [],
            "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        prefix + DOCS_PATH + "/assets/{name}": {"get": {
            "summary": "A file the reference page loads", "operationId": "docs_asset", "security": [],
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string", "enum": list(ASSETS)}}],
            "responses": {"200": {"description": "The file", "content": {kind: {"schema": {"type": "string"}} for kind in sorted(set(ASSETS.values()))}},
                          "404": {"description": "No such file", "content": problem}}}},
    }


def add_docs_routes(app: web.Application, prefix: str, openapi_path: str) -> list[web.AbstractRoute]:
    """The page and its assets (HEAD too); returns every route, for the caller to mark public."""
    assets = prefix + DOCS_PATH + "/assets"
    page = PAGE.format(assets=assets)
    init = INIT.format(openapi=openapi_path)
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}

    async def docs_page(_request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html", headers=headers)

    async def docs_asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == INIT_JS:
            return web.Response(text=init, content_type=ASSETS[name], headers=headers)
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.FileResponse(STATIC / name, headers={**headers, "Content-Type": ASSETS[name]})

    routes = [app.router.add_get(prefix + DOCS_PATH, docs_page), app.router.add_get(assets + "/{name}", docs_asset)]
    return [route for added in routes for route in added.resource]  # GET and the HEAD aiohttp adds beside it
