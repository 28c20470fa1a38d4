"""The one guarded way out to the network, for fetching pages and delivering webhooks.

Every outbound connection resolves its host here and connects only to an address that was
checked: private, loopback, link-local, multicast and reserved addresses are refused unless
the host and port are allow-listed (`allowed_private_hosts`: "host:port", "host:*" for
every port, or a bare "host" for the web's ports 80 and 443 only). The check happens at
connect time, so it covers every redirect hop, and the connection goes to the checked address
(no second DNS lookup for a rebinding server to answer differently). Environment proxies are
never used: a proxy would connect on our behalf, past the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Collection, Iterable

import httpcore
import httpx

from contracts.config import ANY_PORT, allow_list_entry

WEB_PORTS = frozenset({80, 443})
"""The ports a bare host in the allow-list opens: its web servers, not its other services."""


class BlockedAddressError(Exception):
    """A host resolved only to addresses newsmon must not contact."""


def is_allowed(entries: Collection[tuple[str, str]], host: str, port: int) -> bool:
    """Whether the allow-list lets newsmon reach `host` on `port` at a private address."""
    return any(
        name == host
        and (given == ANY_PORT or given == str(port) or (not given and port in WEB_PORTS))
        for name, given in entries
    )


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast IP; False for private, loopback, link-local,
    multicast, reserved, unspecified or unparsable ones (IPv4-mapped IPv6 judged as IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving each host itself and connecting only to an
    address it checked (see the module's docstring)."""

    def __init__(self, allowed_hosts: Collection[str]) -> None:
        self._allowed = frozenset(allow_list_entry(entry) for entry in allowed_hosts)
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        name = host.lower().strip("[]")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {name}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        usable = (
            addresses
            if is_allowed(self._allowed, name, port)
            else [a for a in addresses if is_public_address(a)]
        )
        if not usable:
            raise BlockedAddressError(
                f"{name}:{port} resolves to {', '.join(addresses) or 'nothing'}: private, "
                "loopback, link-local or multicast addresses are refused unless allow-listed"
                " with their port (allowed_private_hosts)"
            )
        for address in usable[:-1]:  # each checked address in turn, as browsers do
            with contextlib.suppress(httpcore.ConnectError, httpcore.ConnectTimeout):
                return await self._connect(address, port, timeout, local_address, socket_options)
        return await self._connect(usable[-1], port, timeout, local_address, socket_options)

    async def _connect(
        self,
        address: str,
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_tcp(
            address,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(
    *,
    allowed_private_hosts: Collection[str],
    timeout: httpx.Timeout | float,
    follow_redirects: bool,
    max_redirects: int = 5,
    max_connections: int = 100,
) -> httpx.AsyncClient:
    """An httpx client whose every connection goes through `GuardedBackend`, without
    environment proxies. A refused address surfaces as `BlockedAddressError`."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx does not expose httpcore's network backend; its pool is replaced by one with
    # the same TLS context and the guarded backend.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=5.0,
        network_backend=GuardedBackend(allowed_private_hosts),
    )
    return httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        follow_redirects=follow_redirects,
        max_redirects=max_redirects,
        trust_env=False,
    )
