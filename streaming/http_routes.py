"""Plain-HTTP routes served beside the WebSocket endpoints: health, metrics, notes, the browser
client's pages (clients/web), auth checks."""
from __future__ import annotations

import hmac
import json
import re
from http import HTTPStatus
from importlib.resources import files
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from streaming.engine import Engine
from streaming.notes import FORMATS, render_note

WEBSOCKET_PATHS = ("/v1/listen", "/vosk", "/v1/watch")
NOTE_PATH = re.compile(r"^/v1/notes/(?P<id>[^/]+?)(?:\.(?P<fmt>[a-z]+))?$")
# The browser client: pages at fixed paths, and flat files under /static/ (a name with no
# slash and no dot but the one before its suffix, so no path can leave the directory).
WEB_ROOT = files("clients") / "web"
WEB_PAGES = {"/": "index.html", "/captions": "captions.html"}
STATIC_PATH = re.compile(r"^/static/(?P<name>[A-Za-z0-9_-]+\.(?P<ext>html|js|css|svg|png|ico))$")
CONTENT_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
                 "css": "text/css; charset=utf-8", "svg": "image/svg+xml", "png": "image/png",
                 "ico": "image/x-icon"}


def response(status: HTTPStatus, body: str | bytes, content_type: str = "text/plain; charset=utf-8") -> Response:
    data = body.encode() if isinstance(body, str) else body
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(data))),
                       ("Cache-Control", "no-store")])
    return Response(status.value, status.phrase, headers, data)


def json_response(payload, status: HTTPStatus = HTTPStatus.OK) -> Response:
    return response(status, json.dumps(payload, indent=1), "application/json")


def query(request: Request) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(request.path).query).items()}


def authorised(request: Request, token: str | None) -> bool:
    if not token:
        return True
    given = query(request).get("token", "")
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        given = header[7:].strip()
    return hmac.compare_digest(given.encode(), token.encode())


def handle_http(engine: Engine, request: Request, token: str | None, live_sessions: int) -> Response | None:
    """A response for plain-HTTP routes and refused handshakes; None lets a WebSocket through."""
    path = urlsplit(request.path).path
    is_websocket = request.headers.get("Upgrade", "").lower() == "websocket"
    if path == "/healthz":
        return json_response({"status": "ok", "sessions": live_sessions,
                              "model": engine.bundle.path.name, "model_family": engine.bundle.config.model_family})
    if path == "/metrics":
        return response(HTTPStatus.OK, generate_latest(engine.metrics.registry), CONTENT_TYPE_LATEST)
    if not is_websocket and (path in WEB_PAGES or path.startswith("/static/")):
        return web_file(WEB_PAGES.get(path) or path)   # holds no data: no token (the page passes it on)
    if not authorised(request, token):
        return response(HTTPStatus.UNAUTHORIZED, "missing or wrong token (use ?token=… or Authorization: Bearer …)\n")
    if path in WEBSOCKET_PATHS or (path == "/" and is_websocket):
        return None if is_websocket else response(HTTPStatus.UPGRADE_REQUIRED, f"{path} is a WebSocket endpoint\n")
    if path == "/v1/notes":
        return json_response([{"session_id": s.session_id, "created": s.created, "updated": s.updated,
                               "closed": s.closed, "segments": s.n_segments, "duration": s.duration}
                              for s in engine.store.list_sessions()])
    match = NOTE_PATH.match(path)
    if match:
        fmt = match["fmt"] or "json"
        if fmt not in FORMATS:
            return response(HTTPStatus.NOT_FOUND, f"unknown note format {fmt!r}; use one of {', '.join(FORMATS)}\n")
        note = engine.store.get_note(match["id"])
        if note is None:
            return response(HTTPStatus.NOT_FOUND, f"no note for session {match['id']!r}\n")
        body, content_type = render_note(note, fmt)
        return response(HTTPStatus.OK, body, content_type)
    return response(HTTPStatus.NOT_FOUND, f"no route for {path}\n")


def web_file(name_or_path: str) -> Response:
    """A page or static file of the browser client; 404 for anything else."""
    match = STATIC_PATH.match(name_or_path if name_or_path.startswith("/") else f"/static/{name_or_path}")
    resource = WEB_ROOT / match["name"] if match else None
    if resource is None or not resource.is_file():
        return response(HTTPStatus.NOT_FOUND, f"no such file: {name_or_path}\n")
    return response(HTTPStatus.OK, resource.read_bytes(), CONTENT_TYPES[match["ext"]])
