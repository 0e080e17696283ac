"""The server's side of the browser client, without a browser: the pages and static files (types,
no way out of clients/web, no token needed for files that hold no data), the watch endpoint that
feeds the caption view, and TLS (wss:// and https:// with --certfile/--keyfile)."""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import soundfile
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from make_tone_model import SAMPLE_RATE
from server_fixtures import converse, finals, server_factory, shared_server, utterances  # noqa: F401
from streaming.cli import build_parser

WEB = Path(__file__).resolve().parents[1] / "clients" / "web"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def fetch(port: int, path: str, context: ssl.SSLContext | None = None) -> tuple[int, str, bytes]:
    """GET with the path sent exactly as given (no client-side normalisation of '..')."""
    conn = (http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10) if context
            else http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def test_pages_and_every_client_file_are_served_with_their_types(shared_server):
    port = shared_server.port
    status, kind, body = fetch(port, "/")
    assert (status, kind) == (200, "text/html; charset=utf-8") and b"/static/app.js" in body
    status, kind, body = fetch(port, "/captions?session=abc")
    assert status == 200 and kind.startswith("text/html") and b"/static/captions.js" in body
    files = sorted(p for p in WEB.iterdir() if p.suffix in TYPES)
    assert {"index.html", "captions.html", "app.js", "captions.js", "pcm-worklet.js", "resampler.js",
            "style.css"} <= {p.name for p in files}
    for path in files:
        status, kind, body = fetch(port, f"/static/{path.name}")
        assert status == 200 and kind.startswith(TYPES[path.suffix]) and body == path.read_bytes(), path.name


def test_every_reference_between_client_files_resolves():
    """No build step: what the pages link and the modules import must exist as served."""
    for path in WEB.iterdir():
        text = path.read_text() if path.suffix in (".html", ".js") else ""
        for name in re.findall(r'"/static/([^"]+)"', text) + re.findall(r'from "\./([^"]+)"', text) \
                + re.findall(r'new URL\("([^"]+)", import\.meta\.url\)', text):
            assert (WEB / name).is_file(), f"{path.name} refers to missing {name}"


@pytest.mark.parametrize("path", ["/static/../streaming/server.py", "/static/..%2fpyproject.toml",
                                  "/static/%2e%2e/pyproject.toml", "/static/", "/static/missing.js",
                                  "/static/web/app.js", "/static/.hidden.js", "/static/app.js.bak",
                                  "/static/app.py", "/index.html"])
def test_no_file_outside_the_client_is_served(shared_server, path):
    status, _, body = fetch(shared_server.port, path)
    assert status == 404 and b"import" not in body


def test_pages_need_no_token_but_data_and_sockets_do(server_factory):
    server = server_factory(token="s3cret")
    assert fetch(server.port, "/")[0] == 200 and fetch(server.port, "/static/app.js")[0] == 200
    assert fetch(server.port, "/v1/notes")[0] == 401
    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(converse(server.url("/v1/watch?session=x")))
    assert refused.value.response.status_code == 401


async def watch_while_talking(server, session_id: str) -> tuple[list[dict], list[dict]]:
    watched: list[dict] = []
    async with connect(server.url(f"/v1/watch?session={session_id}")) as watcher:
        watched.append(json.loads(await watcher.recv()))
        talked = await converse(server.url(), utterances("hello world"),
                                start={"type": "start", "session_id": session_id})
        while watched[-1]["type"] != "note":
            watched.append(json.loads(await asyncio.wait_for(watcher.recv(), 10)))
    return watched, talked


def test_a_watcher_gets_a_copy_of_the_sessions_events(shared_server):
    watched, talked = asyncio.run(watch_while_talking(shared_server, "watched-1"))
    assert watched[0] == {"type": "watching", "session_id": "watched-1", "seq": 0, "live": False}
    assert finals(watched) == finals(talked) == ["hello world"]
    same = [e for e in talked if e["type"] != "partial"]   # partials may be dropped for a slow watcher
    assert [e for e in watched[1:] if e["type"] != "partial"] == same
    assert next(e for e in watched if e["type"] == "final")["speaker"] == "Speaker 1"


def test_watch_without_a_session_is_refused(shared_server):
    async def attempt():
        async with connect(shared_server.url("/v1/watch")) as ws:
            events = []
            with pytest.raises(ConnectionClosedError) as closed:
                while True:
                    events.append(json.loads(await ws.recv()))
            return events, closed.value.rcvd.code

    events, code = asyncio.run(asyncio.wait_for(attempt(), 10))
    assert [e["code"] for e in events] == ["bad_message"] and code == 1008


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made now with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


def test_tls_serves_wss_and_https(server_factory, certificate, tmp_path):
    cert, key = certificate
    server = server_factory(certfile=cert, keyfile=key)
    trusting = ssl.create_default_context(cafile=str(cert))
    status, kind, body = fetch(server.port, "/", trusting)
    assert status == 200 and kind.startswith("text/html") and b"app.js" in body
    with urllib.request.urlopen(f"https://127.0.0.1:{server.port}/healthz", context=trusting, timeout=10) as r:
        assert json.loads(r.read())["status"] == "ok"
    with pytest.raises(ssl.SSLCertVerificationError):   # it is real TLS: an untrusted certificate fails
        fetch(server.port, "/", ssl.create_default_context())
    with pytest.raises((http.client.HTTPException, ConnectionError)):   # and plain HTTP is not served
        fetch(server.port, "/healthz")

    # The command-line client over wss://, trusting the certificate through SSL_CERT_FILE.
    wav = tmp_path / "talk.wav"
    soundfile.write(wav, utterances("hello world"), SAMPLE_RATE, subtype="PCM_16")
    result = subprocess.run([sys.executable, "-m", "streaming.cli", "stream", "--speed", "0",
                             f"wss://127.0.0.1:{server.port}/v1/listen", str(wav)],
                            env={**os.environ, "SSL_CERT_FILE": str(cert)}, capture_output=True, text=True,
                            timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    assert "] [Speaker 1] hello world" in result.stdout


def test_serve_takes_a_certificate_and_key():
    args = build_parser().parse_args(["serve", "--model", "m", "--certfile", "c.pem", "--keyfile", "k.pem"])
    assert (args.certfile, args.keyfile) == (Path("c.pem"), Path("k.pem"))
