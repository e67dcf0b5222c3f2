"""Which endpoints Herald will deliver to: http(s) only, and outside development only public
addresses, so a subscriber cannot turn Herald into a proxy into our own network (SSRF)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

ALLOWED_SCHEMES = ("http", "https")


class UnsafeEndpoint(ValueError):
    """The URL is not one Herald delivers to; the message says why."""


def check_endpoint_url(url: str, *, allow_private: bool) -> None:
    """Refuse non-http(s) URLs and, unless allowed, hosts that resolve to non-public addresses.

    A host that does not resolve now is accepted: DNS may not be set up yet, and every address is
    checked again when a delivery connects.
    """
    parts = urlsplit(url)
    if parts.scheme not in ALLOWED_SCHEMES:
        raise UnsafeEndpoint(f"Only http and https endpoints are supported, not {parts.scheme!r}.")
    if not parts.hostname:
        raise UnsafeEndpoint("The endpoint URL has no host.")
    if parts.username is not None or parts.password is not None:
        # Deliveries would not send them, and every reader of the subscriber would see them.
        raise UnsafeEndpoint(
            "The endpoint URL must not carry credentials (user:password@): Herald does not send "
            "them. Receivers authenticate Herald by its webhook-signature header."
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise UnsafeEndpoint(f"The endpoint URL has an invalid port: {exc}.") from exc
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    if not 0 < port < 65536:
        raise UnsafeEndpoint(f"The endpoint URL has an invalid port: {port}.")
    if allow_private:
        return
    try:
        addresses = resolve(parts.hostname, port)
    except OSError:
        return
    check_addresses(parts.hostname, addresses)


def resolve(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def check_addresses(host: str, addresses: list[str]) -> None:
    """Every address a name resolves to must be public: a rebinding name may return any of them."""
    for address in addresses:
        if not is_public_address(address):
            raise UnsafeEndpoint(
                f"{host} resolves to {address}, a private, loopback, link-local, multicast or "
                "reserved address; Herald only delivers to public addresses "
                "(HERALD_ALLOW_PRIVATE_TARGETS is off)."
            )


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast
