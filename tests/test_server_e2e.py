"""End to end over real sockets: captions, concurrency, resampling, Vosk clients, resume, notes,
metrics, MQTT and the command-line clients."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request

import soundfile
import soxr

from make_tone_model import SAMPLE_RATE
from server_fixtures import (PAUSE, TONE_MODEL, converse, errors, finals, s16le, server_factory,  # noqa: F401
                             shared_server, utterances)
from test_mqtt import broker_factory, mosquitto_bin  # noqa: F401  (a real mosquitto)


def get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def test_partials_then_finals_with_the_spoken_text(shared_server):
    events = asyncio.run(converse(shared_server.url(), utterances("hello world", "speech model")))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "ready" and kinds[-1] == "note"
    assert finals(events) == ["hello world", "speech model"]
    assert kinds.index("partial") < kinds.index("final")
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["session_id"] for e in events}) == 1
    first, second = [e for e in events if e["type"] == "final"]
    assert [w["word"] for w in first["words"]] == ["hello", "world"]
    assert 0.2 < first["start"] < first["end"] <= second["start"] < second["end"]
    assert all(0 <= w["confidence"] <= 1 for w in first["words"])
    assert events[-1]["segments"] == 2


def test_an_endpoint_final_is_closed_in_the_decoder_call_of_its_chunk(server_factory):
    """Under load the decoder thread is a queue shared by every stream: a final that took a second
    trip through it would wait behind the other streams' chunks twice."""
    server = server_factory()
    engine, calls = server.server.engine, {"decoder": 0, "chunks": 0}
    run_decoder, encode = engine.run_decoder, engine.batcher.encode

    async def counted_decoder(fn, *args):
        calls["decoder"] += 1
        return await run_decoder(fn, *args)

    async def counted_encode(stream, chunk):
        calls["chunks"] += 1
        return await encode(stream, chunk)

    engine.run_decoder, engine.batcher.encode = counted_decoder, counted_encode
    events = asyncio.run(converse(server.url(), utterances("hello world", "speech model")))
    rules = [e["endpoint"]["rule"] for e in events if e["type"] == "final"]
    assert finals(events) == ["hello world", "speech model"] and rules == ["silence", "silence"]
    # one call per chunk, plus the close at the end of audio: none extra for the two endpoint finals
    assert calls["decoder"] == calls["chunks"] + 1


def test_concurrent_sessions_give_the_same_text_as_one_alone(shared_server):
    texts = ["quick brown fox", "lazy dog", "meeting notes", "stream batch model"]
    audio = [utterances(t, "final topic") for t in texts]
    alone = [finals(asyncio.run(converse(shared_server.url(), a))) for a in audio]

    async def together():
        return await asyncio.gather(*(converse(shared_server.url(), a, realtime=4.0) for a in audio))

    assert [finals(e) for e in asyncio.run(together())] == alone
    assert [a[0] for a in alone] == texts


def test_audio_at_other_rates_and_float_encoding(shared_server):
    audio = utterances("lecture notes")
    for rate in (8000, 44100):
        resampled = soxr.resample(audio, SAMPLE_RATE, rate)
        events = asyncio.run(converse(shared_server.url(), resampled, start={"type": "start", "sample_rate": rate}))
        assert finals(events) == ["lecture notes"], rate
    url = shared_server.url("/v1/listen?encoding=pcm_f32le")
    f32 = [audio[i:i + 1600].astype("<f4").tobytes() for i in range(0, len(audio), 1600)]
    events = asyncio.run(converse(url, before_audio=f32))
    assert finals(events) == ["lecture notes"]


def test_vosk_client_protocol(shared_server):
    """As vosk-server's test client: config, audio, one reply per message, eof -> last result."""
    from websockets.asyncio.client import connect

    async def vosk_client():
        replies, audio = [], utterances("hello world") [: -int(1.2 * SAMPLE_RATE)]  # ends mid-pause
        async with connect(shared_server.url("/vosk")) as ws:
            await ws.send(json.dumps({"config": {"sample_rate": SAMPLE_RATE}}))
            frames = [s16le(audio[i:i + 8000]) for i in range(0, len(audio), 8000)]
            for frame in frames:
                await ws.send(frame)
                replies.append(json.loads(await ws.recv()))
            await ws.send('{"eof" : 1}')
            replies.append(json.loads(await ws.recv()))
        return replies, len(frames)

    replies, n_frames = asyncio.run(vosk_client())
    assert len(replies) == n_frames + 1
    assert all(set(r) == {"partial"} for r in replies[:-1])
    assert any(r["partial"] for r in replies[:-1])
    assert replies[-1]["text"] == "hello world"
    assert [w["word"] for w in replies[-1]["result"]] == ["hello", "world"]
    assert set(replies[-1]["result"][0]) == {"conf", "start", "end", "word"}


def test_resumed_session_continues_numbering_time_and_note(shared_server):
    start = {"type": "start", "session_id": "resume-me"}
    first = asyncio.run(converse(shared_server.url(), utterances("tone test"), start=start))
    second = asyncio.run(converse(shared_server.url(), utterances("audio model"), start=start))
    ready = second[0]
    assert ready["resumed"] and ready["next_segment"] == 1
    final = next(e for e in second if e["type"] == "final")
    assert final["segment"] == 1 and final["start"] > next(e for e in first if e["type"] == "final")["end"]
    status, _, body = get(shared_server.http("/v1/notes/resume-me"))
    assert status == 200 and [s["text"] for s in json.loads(body)["segments"]] == ["tone test", "audio model"]


def test_notes_api_exports(shared_server):
    events = asyncio.run(converse(shared_server.url(), utterances("speaker topic", "summary"),
                                  start={"type": "start", "session_id": "export-me"}))
    assert events[-1]["url"] == "/v1/notes/export-me"
    _, kind, md = get(shared_server.http("/v1/notes/export-me.md"))
    assert kind.startswith("text/markdown") and "speaker topic" in md and md.startswith("#")
    _, _, srt = get(shared_server.http("/v1/notes/export-me.srt"))
    assert srt.startswith("1\n") and " --> " in srt and "summary" in srt
    _, _, vtt = get(shared_server.http("/v1/notes/export-me.vtt"))
    assert vtt.startswith("WEBVTT")
    listing = json.loads(get(shared_server.http("/v1/notes"))[2])
    assert any(s["session_id"] == "export-me" and s["segments"] == 2 for s in listing)


def test_healthz_and_metrics(shared_server):
    asyncio.run(converse(shared_server.url(), utterances("tone")))
    assert json.loads(get(shared_server.http("/healthz"))[2])["status"] == "ok"
    _, kind, metrics = get(shared_server.http("/metrics"))
    assert kind.startswith("text/plain")
    for name in ("steno_sessions_active", "steno_sessions_total", "steno_audio_seconds_total",
                 "steno_batch_size_bucket", "steno_encoder_step_seconds_bucket"):
        assert name in metrics
    audio = [float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("steno_audio_seconds_total")]
    assert audio and audio[0] > 1.0


def test_events_published_to_mqtt(server_factory, broker_factory):
    from aiomqtt import Client

    from streaming.mqtt import MqttOptions

    broker = broker_factory()
    broker.start()
    server = server_factory(engine={"mqtt": MqttOptions("127.0.0.1", broker.port)})

    async def scenario():
        received = []
        async with Client("127.0.0.1", broker.port) as client:
            await client.subscribe("steno/mqtt-session/#", qos=1)

            async def collect():
                async for message in client.messages:
                    received.append((str(message.topic), message.qos, json.loads(message.payload)))
                    if message.topic.value.endswith("/note"):
                        return

            collector = asyncio.create_task(collect())
            await converse(server.url(), utterances("hello world"), start={"type": "start", "session_id": "mqtt-session"})
            await asyncio.wait_for(collector, 10)
        return received

    received = asyncio.run(scenario())
    final = [(qos, payload) for topic, qos, payload in received if topic == "steno/mqtt-session/final"]
    assert final and final[0][0] == 1 and final[0][1]["text"] == "hello world"
    assert any(topic == "steno/mqtt-session/partial" for topic, _, _ in received)


def test_stream_and_transcribe_commands(shared_server, tmp_path):
    wav = tmp_path / "talk.wav"
    soundfile.write(wav, utterances("quick fox", "lazy dog"), SAMPLE_RATE)
    streamed = subprocess.run([sys.executable, "-m", "streaming.cli", "stream", shared_server.url(), str(wav),
                               "--speed", "0"], capture_output=True, text=True, timeout=120)
    assert streamed.returncode == 0, streamed.stderr
    assert "quick fox" in streamed.stdout and "lazy dog" in streamed.stdout
    transcribed = subprocess.run([sys.executable, "-m", "streaming.cli", "transcribe", str(wav), "--json",
                                  "--model", str(TONE_MODEL)], capture_output=True, text=True, timeout=120)
    assert transcribed.returncode == 0, transcribed.stderr
    events = json.loads(transcribed.stdout)
    assert finals(events) == ["quick fox", "lazy dog"] and events[-1]["type"] == "note"
