"""The generic endpoint view over real HTTP on 127.0.0.1: body parsing and error bodies for an
endpoint with a JSON body (no such contract endpoint exists yet, so a test endpoint stands in)."""
import aiohttp
import pytest
from aiohttp import web
from pydantic import BaseModel, Field

from gateway.http.endpoints import Endpoint, as_view
from gateway.http.middleware import request_context


class Greeting(BaseModel):
    name: str = Field(min_length=1)
    times: int = Field(ge=1, le=3)


async def echo(call) -> web.Response:
    return web.json_response({"hello": call.body.name * call.body.times}, status=201)


@pytest.fixture
async def client():
    app = web.Application(middlewares=[request_context], client_max_size=1024)
    app.router.add_post("/greet", as_view(Endpoint("POST", "/greet", "Greet", echo, body=Greeting, status=201)))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as session:
        yield session
    await runner.cleanup()


async def test_valid_body_reaches_the_handler(client):
    async with client.post("/greet", json={"name": "ab", "times": 2}) as response:
        assert (response.status, await response.json()) == (201, {"hello": "abab"})


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b""], ids=["syntax", "not-utf8", "empty"])
async def test_malformed_or_missing_json_is_a_problem(client, raw):
    async with client.post("/greet", data=raw, headers={"Content-Type": "application/json"}) as response:
        body = await response.json(content_type=None)
    expected = 422 if raw == b"" else 400
    assert response.status == expected and body["status"] == expected
    assert response.content_type == "application/problem+json"


async def test_validation_errors_name_each_field(client):
    async with client.post("/greet", json={"name": "", "times": 9}) as response:
        assert response.status == 422
        body = await response.json(content_type=None)
    assert {e["field"] for e in body["errors"]} == {"name", "times"}


async def test_oversized_body_is_413_problem(client):
    async with client.post("/greet", data=b"x" * 5000, headers={"Content-Type": "application/json"}) as response:
        assert response.status == 413
        assert response.content_type == "application/problem+json"
