"""The egress guard: every refusal happens before a socket exists. The resolver is a fake (no real
lookup) and the socket factory under the guard records the call and raises, so even a broken guard
never sends a packet anywhere; the only real connection goes to 127.0.0.1."""
from __future__ import annotations

import ipaddress
import socket

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from posint_common.egress import EgressPolicy, EgressRefused, egress_session, is_public, parse_networks, refused
from posint_common.settings import ServiceSettings

BLOCKED = [
    "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1", "169.254.169.254",
    "169.254.1.1", "224.0.0.1", "240.0.0.1", "255.255.255.255", "0.0.0.0", "192.0.2.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "::ffff:169.254.169.254", "::127.0.0.1", "2001:db8::1", "64:ff9b::a00:1", "2002:a00:1::1",
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34"]


class FakeResolver(AbstractResolver):
    """Answers from a table; records every name it was asked."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table, self.asked = table, []

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.asked.append(host)
        return [{"hostname": host, "host": address, "port": port, "proto": 0, "flags": 0,
                 "family": socket.AF_INET6 if ":" in address else socket.AF_INET} for address in self.table[host]]

    async def close(self) -> None:
        pass


class NoSockets:
    """Socket factory under the guard: records the address it would dial and refuses to make a socket."""

    def __init__(self) -> None:
        self.dialled = []

    def __call__(self, addr_info):
        self.dialled.append(addr_info[4][0])
        raise ConnectionRefusedError("test: no sockets beyond this point")


async def attempt(policy: EgressPolicy, url: str, table: dict[str, list[str]] | None = None):
    resolver, sockets = FakeResolver(table or {}), NoSockets()
    async with egress_session(policy, resolver=resolver, socket_factory=sockets) as session:
        with pytest.raises(aiohttp.ClientError) as caught:
            await session.get(url, allow_redirects=False)
    return caught.value, resolver, sockets


@pytest.mark.parametrize("address", BLOCKED)
def test_every_non_public_address_is_blocked(address):
    assert not is_public(ipaddress.ip_address(address))
    with pytest.raises(EgressRefused):
        EgressPolicy().check_address(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    EgressPolicy().check_address(address)


def test_allow_list_exceptions_and_allow_only():
    loopback = EgressPolicy(parse_networks("127.0.0.0/8"))
    loopback.check_address("127.0.0.1")
    loopback.check_address("::ffff:127.0.0.1")  # the mapped form of an allowed address is allowed
    with pytest.raises(EgressRefused):
        loopback.check_address("10.0.0.1")
    only = EgressPolicy(parse_networks("127.0.0.0/8"), allow_only=True)
    only.check_address("127.0.0.2")
    with pytest.raises(EgressRefused):
        only.check_address("93.184.216.34")
    with pytest.raises(EgressRefused):
        only.check_host("example.com")
    with pytest.raises(EgressRefused):
        EgressPolicy().check_host("[::ffff:a9fe:a9fe]")  # 169.254.169.254, mapped, as a URL spells it


@pytest.mark.parametrize("address", ["10.0.0.7", "169.254.169.254", "::ffff:127.0.0.1", "fd00:ec2::254", "::1"])
async def test_name_resolving_to_a_blocked_address_is_refused_before_connect(address):
    error, resolver, sockets = await attempt(EgressPolicy(), "http://hooks.example.com/x", {"hooks.example.com": [address]})
    assert refused(error) and resolver.asked == ["hooks.example.com"] and sockets.dialled == []


async def test_only_the_allowed_addresses_of_a_name_are_dialled():
    table = {"mixed.example.com": ["10.0.0.7", "93.184.216.34"]}
    error, _resolver, sockets = await attempt(EgressPolicy(), "http://mixed.example.com/", table)
    assert sockets.dialled == ["93.184.216.34"] and not refused(error)  # the fake factory's own refusal


@pytest.mark.parametrize("url", ["http://10.1.2.3:8080/", "http://169.254.169.254/latest/meta-data/",
                                 "http://[::ffff:10.0.0.1]/", "http://[fd00:ec2::254]/", "http://127.0.0.1:9/"])
async def test_bare_ip_urls_are_refused_before_connect(url):
    error, resolver, sockets = await attempt(EgressPolicy(), url)
    assert refused(error) and resolver.asked == [] and sockets.dialled == []


async def test_allow_only_refuses_names_before_any_lookup():
    policy = EgressPolicy(parse_networks("127.0.0.0/8"), allow_only=True)
    error, resolver, sockets = await attempt(policy, "https://localhost/", {"localhost": ["127.0.0.1"]})
    assert refused(error) and resolver.asked == [] and sockets.dialled == []
    error, _resolver, sockets = await attempt(policy, "http://93.184.216.34/")
    assert refused(error) and sockets.dialled == []


async def test_the_guard_decides_what_is_dialled_not_the_fake():
    """Control for the tests above: an allowed address does reach the socket factory."""
    _error, _resolver, sockets = await attempt(EgressPolicy(parse_networks("127.0.0.0/8")), "http://127.0.0.1:9/")
    assert sockets.dialled == ["127.0.0.1"]


@pytest.fixture
async def receiver():
    hits = []

    async def hook(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/hook", hits
    await runner.cleanup()


async def test_loopback_allowed_reaches_a_real_server(receiver):
    url, hits = receiver
    async with egress_session(EgressPolicy(parse_networks("127.0.0.0/8"), allow_only=True)) as session:
        async with session.get(url) as response:
            assert response.status == 200 and await response.text() == "ok"
    assert hits == ["/hook"]


async def test_loopback_without_the_allow_list_never_reaches_the_server(receiver):
    url, hits = receiver
    async with egress_session(EgressPolicy()) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await session.get(url)
    assert refused(caught.value) and hits == []


async def test_both_timeouts_are_always_set():
    async with egress_session(EgressPolicy(), connect_timeout_s=2, total_timeout_s=7) as session:
        assert (session.timeout.connect, session.timeout.sock_connect, session.timeout.total) == (2, 2, 7)
    async with egress_session(EgressPolicy()) as session:
        assert (session.timeout.connect, session.timeout.total) == (5, 15)


def test_settings_name_a_bad_allow_list():
    with pytest.raises(ValueError, match="egress_allow"):
        ServiceSettings(database_url="x", kafka_bootstrap_servers="y", egress_allow="127.0.0.0/8,not-a-net")
    settings = ServiceSettings(database_url="x", kafka_bootstrap_servers="y", egress_allow="127.0.0.0/8, ::1",
                               egress_allow_only=True)
    policy = EgressPolicy.from_settings(settings)
    assert policy.allow_only and len(policy.allow) == 2


def test_the_product_dials_out_only_through_the_guard():
    """One egress guard: no product module opens its own client session or connector."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[4]
    sources = [*root.glob("services/*/src/**/*.py"), *root.glob("libs/common/src/**/*.py")]
    assert len(sources) > 20
    offenders = [str(path.relative_to(root)) for path in sources if path.name != "egress.py"
                 and any(call in path.read_text() for call in ("ClientSession(", "TCPConnector(", "open_connection("))]
    assert offenders == [], f"outbound HTTP must use posint_common.egress.egress_session: {offenders}"
