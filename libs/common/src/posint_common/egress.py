"""The one way the product dials out: an aiohttp session whose connector refuses, before any
connect, every address a tenant's URL must never reach (SSRF guard).

Two checks, both before a socket exists:

- the resolver: in allow-only mode a host name is refused before any DNS lookup; otherwise the
  names are resolved and every blocked address is dropped (none left: refused);
- the socket factory: the address actually dialled, after DNS and for bare-IP URLs (which aiohttp
  never sends to a resolver), is checked again; a refused address never gets a socket.

Blocked: loopback, private, shared (CGNAT), link-local, unique-local, multicast, reserved,
unspecified and cloud metadata addresses, IPv4 and IPv6, IPv4-mapped/compatible IPv6 judged by the
IPv4 inside. ``EGRESS_ALLOW`` lists networks allowed anyway (``127.0.0.0/8`` in dev and tests);
``EGRESS_ALLOW_ONLY`` (make run/test/bench) allows nothing else at all, names included, so a test
can never send a packet beyond loopback.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Callable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
SocketFactory = Callable[[tuple], socket.socket]

METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
                      ipaddress.ip_address("100.100.100.200")})  # AWS/GCP/Azure, AWS IPv6, Alibaba
CONNECT_TIMEOUT_S = 5.0
TOTAL_TIMEOUT_S = 15.0


class EgressRefused(OSError):
    """A destination the policy does not allow; raised before any connect."""


def parse_networks(text: str) -> tuple[Network, ...]:
    """``127.0.0.0/8,::1/128`` (a bare address is its own network); ValueError names a bad entry."""
    networks = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"'{entry}' is not an IP network such as 127.0.0.0/8") from None
    return tuple(networks)


def _unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (``::ffff:a.b.c.d``, ``::a.b.c.d``), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.packed[:12] == bytes(12) and int(address) > 1:  # deprecated IPv4-compatible form
            return ipaddress.IPv4Address(address.packed[12:])
    return address


def is_public(address: IPAddress) -> bool:
    """True only for a globally routable unicast address that is no metadata service."""
    address = _unwrap(address)
    return not (
        address in METADATA or address.is_loopback or address.is_private or address.is_link_local
        or address.is_multicast or address.is_reserved or address.is_unspecified or not address.is_global
        or (isinstance(address, ipaddress.IPv6Address) and (address.is_site_local or address.sixtofour or address.teredo))
    )


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host spells literally (``[::1]`` included), else None (a name)."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


@dataclass(frozen=True)
class EgressPolicy:
    allow: tuple[Network, ...] = ()
    allow_only: bool = False

    @classmethod
    def from_settings(cls, settings) -> "EgressPolicy":
        return cls(parse_networks(settings.egress_allow), settings.egress_allow_only)

    def allowed(self, address: IPAddress) -> bool:
        candidates = {address, _unwrap(address)}
        if any(candidate in network for candidate in candidates for network in self.allow
               if candidate.version == network.version):
            return True
        return not self.allow_only and is_public(address)

    def check_address(self, address: str | IPAddress) -> None:
        parsed = ipaddress.ip_address(address.split("%")[0]) if isinstance(address, str) else address
        if not self.allowed(parsed):
            raise EgressRefused(f"egress to {parsed} is not allowed")

    def check_host(self, host: str) -> None:
        """What can be judged without DNS: a literal address, or any name in allow-only mode."""
        address = literal_address(host)
        if address is not None:
            self.check_address(address)
        elif self.allow_only:
            raise EgressRefused("egress to host names is not allowed (EGRESS_ALLOW_ONLY)")


class GuardedResolver(AbstractResolver):
    """Refuses names before any lookup in allow-only mode; drops blocked addresses otherwise."""

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.policy.check_host(host)
        if self.inner is None:
            self.inner = DefaultResolver()
        results = [result for result in await self.inner.resolve(host, port, family)
                   if self.policy.allowed(ipaddress.ip_address(result["host"].split("%")[0]))]
        if not results:
            raise EgressRefused("every address of the host is refused")
        return results

    async def close(self) -> None:
        if self.inner is not None:
            await self.inner.close()


def _plain_socket(addr_info: tuple) -> socket.socket:
    family, type_, proto, _name, _address = addr_info
    return socket.socket(family=family, type=type_, proto=proto)


def guarded_socket_factory(policy: EgressPolicy, inner: SocketFactory = _plain_socket) -> SocketFactory:
    """The last word: the address about to be dialled, whatever produced it."""

    def factory(addr_info: tuple) -> socket.socket:
        policy.check_address(addr_info[4][0])
        return inner(addr_info)

    return factory


def egress_session(
    policy: EgressPolicy, *, connect_timeout_s: float = CONNECT_TIMEOUT_S, total_timeout_s: float = TOTAL_TIMEOUT_S,
    resolver: AbstractResolver | None = None, socket_factory: SocketFactory = _plain_socket, limit: int = 100,
) -> aiohttp.ClientSession:
    """A client session for every outbound HTTP call: guarded connector, both timeouts always set,
    no proxy from the environment. Callers still pass ``allow_redirects=False`` where a redirect
    must not be followed (a followed one goes through the same guard)."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(policy, resolver), socket_factory=guarded_socket_factory(policy, socket_factory),
        limit=limit,
    )
    timeout = aiohttp.ClientTimeout(total=total_timeout_s, connect=connect_timeout_s, sock_connect=connect_timeout_s)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)


def refused(error: BaseException) -> bool:
    """Whether a client error (or what caused it) is the guard's refusal."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, EgressRefused) or isinstance(getattr(seen, "os_error", None), EgressRefused):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
