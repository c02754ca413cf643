"""Who is asking: the login (Basic, or a Bearer key user:password), the SSO header believed only from trusted
proxies, the client address behind them (uvicorn's ProxyHeadersMiddleware, the socket's peer kept), who
administers, and the per-user rate limit."""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
import threading
import time
from collections import defaultdict, deque

from fastapi import Request

from rag.settings import Settings


class RateLimiter:
    """Per-client sliding window of one minute."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._hits: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        if self.per_minute <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            hits = self._hits[client]
            while hits and now - hits[0] > 60:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return False
            hits.append(now)
            return True


def rate_limiter(settings: Settings):
    """The per-client limit: counted in this process, or — when the index is on PostgreSQL and several processes
    serve — in the database they share (rag/store/shared.py), falling back to this process while it is down."""
    local = RateLimiter(settings.rate_limit_per_minute)
    if settings.store in ("", "embedded"):
        return local
    from rag.store.shared import PgRateLimiter

    return PgRateLimiter(settings, settings.rate_limit_per_minute, fallback=local)


def parse_users(spec: str) -> dict[str, str]:
    users = {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, _, password = item.partition(":")
        users[name] = password
    return users


def _networks(spec: str) -> list:
    nets = []
    for item in filter(None, (x.strip() for x in spec.split(","))):
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue
    return nets


PEER = "rag.peer"  # the scope key holding the socket's peer, before uvicorn's proxy-headers middleware rewrites `client`


class KeepPeer:
    """Outermost ASGI middleware: keeps the socket's peer address in the scope, since uvicorn's ProxyHeadersMiddleware
    (inside it) replaces `client` with the address a trusted proxy forwarded for."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            scope[PEER] = scope.get("client")
        await self.app(scope, receive, send)


def socket_peer(request: Request) -> str:
    """Who opened the connection (a proxy, or the client itself), whatever the forwarding headers say."""
    peer = request.scope.get(PEER, request.scope.get("client"))
    return peer[0] if peer else ""


def from_trusted_proxy(request: Request, settings: Settings) -> bool:
    """Did this request reach us through one of the configured proxies (by the socket's peer address)?"""
    peer = socket_peer(request)
    names = {x.strip() for x in settings.trusted_proxies.split(",") if x.strip()}
    if peer in names:
        return True
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in net for net in _networks(settings.trusted_proxies))


# Every header a proxy may use to say whom it forwards for: treated alike, and believed only from a trusted proxy.
FORWARDING_HEADERS = ("x-forwarded-for", "x-real-ip", "forwarded")


def forwarded(request: Request) -> bool:
    """Did anything in front of us say it forwards this request (whoever sent the header)?"""
    return any(name in request.headers for name in FORWARDING_HEADERS)


def forwarded_for(request: Request) -> str:
    """The original client a proxy names: X-Forwarded-For's first address, X-Real-IP, or Forwarded's for=."""
    first = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
    if first:
        return first
    if request.headers.get("x-real-ip", "").strip():
        return request.headers["x-real-ip"].strip()
    match = re.search(r'for="?\[?([^;,"\]]+)', request.headers.get("forwarded", ""), re.IGNORECASE)
    return match.group(1).strip() if match else ""


def client_address(request: Request, settings: Settings) -> str:
    """The rate-limit key's address: the socket's peer, or the client a trusted proxy forwarded for — from
    X-Forwarded-For, uvicorn's ProxyHeadersMiddleware (the last address no trusted proxy added) has set it as the
    request's client; a proxy that sends only X-Real-IP or Forwarded is read here."""
    peer = socket_peer(request) or "?"
    if not from_trusted_proxy(request, settings):
        return peer
    client = request.client.host if request.client else ""
    return client if client and client != peer else (forwarded_for(request) or peer)


def check_user(request: Request, settings: Settings) -> str | None:
    """The authenticated user, '' when no authentication is configured, None when the request is refused.

    The SSO header counts only on requests that come from a configured proxy; anyone else must use Basic auth
    (when users are configured) or is refused (when only the SSO header is)."""
    if settings.trusted_user_header and from_trusted_proxy(request, settings):
        return request.headers.get(settings.trusted_user_header) or None
    users = parse_users(settings.auth_users)
    if not users:
        return None if settings.trusted_user_header else ""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):  # an OpenAI client's API key: "user:password" of RAG_AUTH_USERS
        name, _, password = header[7:].strip().partition(":")
        if name in users and secrets.compare_digest(users[name], password):
            return name
        return None
    if header.lower().startswith("basic "):
        try:
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if name in users and secrets.compare_digest(users[name], password):
            return name
    return None


def is_admin(user: str | None, settings: Settings, request: Request | None = None) -> bool:
    """A user named in RAG_ADMIN_USERS; or, when no login is configured at all, the person at this machine (a request
    from a loopback address that no proxy forwarded): a local installation manages its own documents."""
    admins = {x.strip() for x in settings.admin_users.split(",") if x.strip()}
    if user:
        return user in admins
    if user == "" and request is not None and not settings.auth_users and not settings.trusted_user_header:
        peer = socket_peer(request)
        try:
            loopback = ipaddress.ip_address(peer).is_loopback
        except ValueError:
            loopback = peer == "testclient"  # Starlette's test client
        return loopback and not forwarded(request) and not from_trusted_proxy(request, settings)
    return False


PUBLIC_PATHS = frozenset({"/healthz", "/embed/bubble.js"})  # answered without login: health, and the embed script


def public_path(path: str, settings: Settings) -> bool:
    """Paths served without login: the health check, and the embed script (it holds no data, only the chat's address;
    the chat it opens asks for the login as usual). With or without the public prefix (root_path)."""
    root = settings.root_path.rstrip("/")
    return path in PUBLIC_PATHS or (bool(root) and path.startswith(root + "/") and path[len(root):] in PUBLIC_PATHS)


def limited_route(request: Request, settings: Settings) -> bool:
    """Every route that answers or searches, Gradio's included (its calls are POSTs)."""
    path = request.url.path
    return request.method == "POST" or path.endswith("/api/search")
