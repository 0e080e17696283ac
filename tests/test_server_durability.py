"""kill -9 of a real server process loses no final a client has seen."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server_fixtures import TONE_MODEL, free_port, s16le, utterances, wait_listening
from streaming.store import NoteStore


def test_kill_9_loses_no_final_the_client_saw(tmp_path):
    port, db = free_port(), tmp_path / "notes.sqlite3"
    proc = subprocess.Popen([sys.executable, "-m", "streaming.cli", "serve", "--model", str(TONE_MODEL),
                             "--port", str(port), "--db", str(db), "--threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
        texts = ["hello world", "speech model", "lazy dog", "quick brown fox"]
        audio = utterances(*texts)

        async def client() -> list[str]:
            seen = []
            async with connect(f"ws://127.0.0.1:{port}/v1/listen") as ws:
                await ws.send(json.dumps({"type": "start", "session_id": "doomed"}))
                try:
                    for i in range(0, len(audio), 1600):
                        await ws.send(s16le(audio[i:i + 1600]))
                        await asyncio.sleep(0.02)  # 5x real time
                        while True:
                            try:
                                event = json.loads(await asyncio.wait_for(ws.recv(), 0.001))
                            except TimeoutError:
                                break
                            if event["type"] == "final":
                                seen.append(event["text"])
                                if len(seen) == 2:
                                    os.kill(proc.pid, signal.SIGKILL)
                                    return seen
                except ConnectionClosed:
                    pass
            return seen

        seen = asyncio.run(asyncio.wait_for(client(), 120))
        assert seen == texts[:2]
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with NoteStore(db) as store:
        stored = [s.text for s in store.get_note("doomed").segments]
    assert stored[:2] == seen and stored == texts[:len(stored)]
