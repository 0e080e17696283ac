"""`steno stream URL FILE`: stream an audio file to a Steno server, in real time or faster, and
print live captions (partials overwrite one terminal line; finals stay)."""
from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np
from websockets.asyncio.client import connect

from streaming.audio import read_audio

FRAME_SECONDS = 0.1


async def stream_file(url: str, path: str, speed: float = 1.0, hotwords: tuple[str, ...] = (),
                      session_id: str | None = None, token: str | None = None, out=sys.stdout) -> list[dict]:
    """Send the file as s16le frames at `speed` x real time (0: as fast as possible); return all events."""
    samples, rate = read_audio(path)
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    frame_bytes = 2 * int(rate * FRAME_SECONDS)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    events: list[dict] = []
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        start = {"type": "start", "sample_rate": rate, "encoding": "pcm_s16le", "hotwords": list(hotwords)}
        if session_id:
            start["session_id"] = session_id
        await ws.send(json.dumps(start))

        async def receive() -> None:
            async for message in ws:
                event = json.loads(message)
                events.append(event)
                show(event, out)

        receiver = asyncio.create_task(receive())
        began = time.monotonic()
        for i, offset in enumerate(range(0, len(pcm), frame_bytes)):
            await ws.send(pcm[offset:offset + frame_bytes])
            if speed > 0:
                await asyncio.sleep(max(0.0, began + (i + 1) * FRAME_SECONDS / speed - time.monotonic()))
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(receiver, timeout=60)
    return events


def show(event: dict, out) -> None:
    kind = event["type"]
    if kind == "partial":
        out.write(f"\r\033[K… {event['text']}")
    elif kind == "final":
        speaker = f"[{event['speaker']}] " if event.get("speaker") else ""
        out.write(f"\r\033[K[{event['start']:7.2f}-{event['end']:7.2f}] {speaker}{event['text']}\n")
    elif kind == "error":
        out.write(f"\r\033[Kerror {event['code']}: {event['message']}\n")
    elif kind == "note":
        out.write(f"\r\033[Knote: {event['segments']} segments, {event['duration']:.1f} s — {event['url']}\n")
    out.flush()
