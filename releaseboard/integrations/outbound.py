"""The one way Releaseboard sends HTTP requests to addresses users type in.

A webhook URL must not become a way to reach what sits behind the firewall (the
database, the cloud's metadata service, an admin port on localhost):
- the host is resolved once, and every address it resolves to is checked: loopback,
  private, link-local (which holds the cloud metadata address 169.254.169.254),
  multicast, reserved and unspecified addresses are refused, unless an admin lists
  their network in RELEASEBOARD_WEBHOOK_ALLOW_NETWORKS;
- the connection goes to the address that was checked (a second DNS answer cannot
  point it elsewhere), with the host name kept for TLS and the Host header;
- redirects are not followed; connect and read have timeouts; the response is read up
  to a cap.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_BYTES = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Refused(ValueError):
    """The URL may not be called (its scheme, or where its host points)."""


@dataclass(frozen=True)
class Response:
    status: int | None
    duration_ms: int
    excerpt: str
    error: str = ""


def parse_networks(text: str) -> list[Network]:
    """RELEASEBOARD_WEBHOOK_ALLOW_NETWORKS: comma-separated CIDRs."""
    networks: list[Network] = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            networks.append(ipaddress.ip_network(part, strict=False))
    return networks


def _forbidden(address: IPAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _forbidden(address.ipv4_mapped)
    for flag, what in (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address (cloud metadata lives there)"),
        ("is_private", "a private address"),
        ("is_multicast", "a multicast address"),
        ("is_reserved", "a reserved address"),
        ("is_unspecified", "an unspecified address"),
    ):
        if getattr(address, flag):
            return what
    return ""


def check_url(url: str, allow: Iterable[Network] = ()) -> tuple[str, int, str, IPAddress]:
    """Check a URL and resolve its host: (scheme, port, host, the address to connect to).
    Raises Refused with a sentence that says why."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused("Only http:// and https:// URLs can receive webhooks.")
    if not parts.hostname:
        raise Refused("The URL has no host name.")
    if parts.username or parts.password:
        raise Refused("Put no user name or password in the URL; the signature authenticates Releaseboard.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Refused(f"The host {parts.hostname} could not be resolved ({exc.strerror}).") from None
    allowed = list(allow)
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        why = _forbidden(address)
        if why and not any(address in network for network in allowed):
            raise Refused(
                f"{parts.hostname} resolves to {address}, {why}: webhooks may not be sent there. "
                "An admin can allow that network with RELEASEBOARD_WEBHOOK_ALLOW_NETWORKS."
            )
    return parts.scheme, port, parts.hostname, addresses[0]


class _PinnedConnection(http.client.HTTPConnection):
    """Connects to the checked address, whatever the host name resolves to by now."""

    def __init__(self, host: str, port: int, address: IPAddress, tls: ssl.SSLContext | None) -> None:
        super().__init__(host, port, timeout=CONNECT_TIMEOUT)
        self._address = str(address)
        self._tls = tls

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), timeout=CONNECT_TIMEOUT)
        sock.settimeout(READ_TIMEOUT)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host) if self._tls is not None else sock


def post(url: str, body: bytes, headers: dict[str, str], allow: Iterable[Network] = ()) -> Response:
    """POST body to url through the guard. Never raises for network trouble: the
    response says what happened (status None and an error when there was no answer)."""
    began = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - began) * 1000)

    try:
        scheme, port, host, address = check_url(url, allow)
    except Refused as exc:
        return Response(None, elapsed(), "", str(exc))
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    tls = ssl.create_default_context() if scheme == "https" else None
    connection = _PinnedConnection(host, port, address, tls)
    try:
        connection.request("POST", path, body=body, headers={**headers, "Content-Type": "application/json"})
        response = connection.getresponse()
        content = response.read(MAX_RESPONSE_BYTES)
        excerpt = content[:EXCERPT_BYTES].decode("utf-8", errors="replace")
        error = ""
        if 300 <= response.status < 400:
            error = f"The receiver answered with a redirect ({response.status}); redirects are not followed."
        return Response(response.status, elapsed(), excerpt, error)
    except (OSError, http.client.HTTPException) as exc:
        return Response(None, elapsed(), "", f"No answer: {type(exc).__name__}: {exc}"[:500])
    finally:
        connection.close()
