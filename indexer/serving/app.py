"""The HTTP face of a SearchService: a Starlette app (the JSON API and one HTML page), served by
uvicorn on a socket bound here.

Every call into the index runs on a worker thread, at most as many at once as the service has
Searchers, so a slow query holds one thread and the event loop keeps answering the others. Errors
are JSON with a 4xx status for bad requests; an unexpected one is a 500 with no traceback.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import socket
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import anyio
import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from indexer.errors import ArgumentError, IndexerError, QueryError
from indexer.retrieval.scoring import DEFAULT_B, DEFAULT_K1
from indexer.serving.service import (
    DEFAULT_SEARCHERS,
    NotFoundError,
    SearchRequest,
    SearchService,
    SourceGoneError,
)

log = logging.getLogger("indexer.serving")

# library errors -> HTTP status; any other IndexerError (a damaged index found mid-query) is a 500
_STATUS = ((QueryError, 400), (ArgumentError, 400), (NotFoundError, 404), (SourceGoneError, 410))
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
GRACE_SECONDS = 5  # how long a stopping server waits for the requests in flight


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={"X-Content-Type-Options": "nosniff"})


def _host_name(header: str) -> str:
    """`127.0.0.1:8080` -> 127.0.0.1, `[::1]:8080` -> ::1."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0].lower()


def _page() -> tuple[bytes, str]:
    """The search page, and a Content-Security-Policy that lets only its own inline script and style
    run (by their hashes) and lets it fetch only from this server."""
    html = resources.files("indexer.serving").joinpath("page.html").read_text(encoding="utf-8")

    def digest(tag: str) -> str:
        body = re.search(rf"<{tag}>(.*?)</{tag}>", html, re.S)
        assert body is not None, f"page.html has no <{tag}>"
        return "'sha256-" + base64.b64encode(hashlib.sha256(body.group(1).encode("utf-8")).digest()).decode() + "'"

    policy = (
        f"default-src 'none'; script-src {digest('script')}; style-src {digest('style')}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    return html.encode("utf-8"), policy


def create_app(
    service: SearchService, loopback_only: bool = True, on_ready: Callable[[], None] | None = None
) -> Starlette:
    """A Starlette app answering `/` (the page), `/search`, `/stats` and `/doc/{id}` from `service`.

    `loopback_only` refuses requests whose Host header is not a loopback name (a web page that
    re-points its own host name at 127.0.0.1 cannot then read the index). `on_ready` is called
    once the app has started.
    """
    page, policy = _page()
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app):
        state["limiter"] = anyio.CapacityLimiter(service.searchers)  # as many threads as Searchers
        if on_ready is not None:
            on_ready()
        yield

    async def in_thread(fn: Callable, *args):
        return await anyio.to_thread.run_sync(fn, *args, limiter=state["limiter"])

    def answer(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if loopback_only and _host_name(request.headers.get("host", "")) not in _LOOPBACK_NAMES:
                return _error(400, "this server answers only requests addressed to localhost or 127.0.0.1")
            try:
                return await handler(request)
            except IndexerError as err:
                status = next((code for kind, code in _STATUS if isinstance(err, kind)), 500)
                return _error(status, str(err))
            except Exception as err:  # a bug: answer in JSON, log one line, keep serving
                log.error("internal error on %s: %s: %s", request.url.path, type(err).__name__, err)
                return _error(500, f"internal error: {type(err).__name__}")

        return endpoint

    @answer
    async def home(request: Request) -> Response:
        return Response(
            page,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff"},
        )

    @answer
    async def search(request: Request) -> Response:
        wanted = SearchRequest.from_params(request.query_params)
        return JSONResponse(await in_thread(service.search, wanted))

    @answer
    async def stats(request: Request) -> Response:
        return JSONResponse(service.stats())

    @answer
    async def document(request: Request) -> Response:
        return JSONResponse(await in_thread(service.document, request.path_params["doc"]))

    async def http_error(request: Request, err: HTTPException) -> Response:
        # what Starlette answers itself: an unknown address (404), a method other than GET (405)
        return _error(err.status_code, f"{err.detail}: {request.method} {request.url.path}")

    routes = [
        Route("/", home, methods=["GET"]),
        Route("/search", search, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/doc/{doc:path}", document, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host`:`port` (0: a free port). Raises IndexerError when the
    address cannot be used (in use, not this machine's, no such host)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as err:
        raise IndexerError(f"cannot listen on {host}:{port}: {getattr(err, 'strerror', None) or err}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(256)
    except OSError as err:
        sock.close()
        raise IndexerError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return sock


def address_of(sock: socket.socket) -> str:
    """http://host:port of a bound socket, an IPv6 host in brackets."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    index: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    searchers: int = DEFAULT_SEARCHERS,
    k1: float = DEFAULT_K1,
    b: float = DEFAULT_B,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve `index` over HTTP until SIGINT or SIGTERM; returns once the requests in flight are
    answered (or after GRACE_SECONDS). `on_ready(address)` is called when it accepts requests.

    Raises IndexFormatError (and the like) for an unreadable index and IndexerError when the
    address cannot be listened on, both before anything is served. uvicorn handles the signals
    and, having stopped, raises the signal again for the handler that was there before it.
    """
    service = SearchService(index, searchers, k1, b)
    try:
        sock = bind(host, port)
        address = address_of(sock)
        loopback = sock.family in (socket.AF_INET, socket.AF_INET6) and (
            sock.getsockname()[0] in ("127.0.0.1", "::1") or sock.getsockname()[0].startswith("127.")
        )
        app = create_app(service, loopback_only=loopback, on_ready=(lambda: on_ready(address)) if on_ready else None)
        config = uvicorn.Config(
            app,
            log_config=None,  # uvicorn's warnings reach stderr through logging's last resort, its chatter does not
            access_log=False,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=GRACE_SECONDS,
        )
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()
    finally:
        service.close()
