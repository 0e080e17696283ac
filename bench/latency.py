"""Latency and throughput under load: N concurrent real-time streams against one server.

    python -m bench.latency --model BUNDLE --streams 1,8,16,32 --seconds 30 [--url URL] [--audio WAV] \
        [--serve-args "--int8 --no-speakers --summaries none"]

Without --url it starts `steno serve` as a subprocess (so its CPU and memory are its own; its log goes
to OUT/server.log). Each client sends audio in real time in `--frame-ms` frames and timestamps every
send and every event. Without --audio, clients send tone speech (tests/make_tone_model.py), which a
tone-trained model transcribes: words at known times, whatever the model's size. Either way there
are 8 scripts, stream i sending script i mod 8: tone scripts of 8 seeds, or 8 rotations of the
--audio file, each starting at a pause (the quietest 100 ms of its eighth of the file).

Per word, measured on the client clock (Riva-style percentiles p50/p90/p95/p99):
- partial latency: first event (partial or final) showing the word, minus the moment the audio of
  the word's end had been sent. A chunked model cannot beat its chunk, so the goal is stated
  beyond the chunk: p95 <= chunk + 300 ms.
- final latency: the final, minus the moment the endpoint could fire: the audio through the end of
  the chunk in which the server's endpoint rule fired (the final's `endpoint.at`) had been sent.
Per run: server CPU-RTF (server CPU seconds / audio seconds, per stream) in all and per thread
group (event loop, encoder, decoder, speakers, topics, ...; Linux), CPU %, RSS growth per
stream, the clients' own CPU % (on one machine they share its cores), late frames (a send more than
one frame behind its schedule: the client or server could not keep up), the drain lag (last audio
sent to the last `final`: a server that fell behind shows it here) and the note lag (to the `note`
event, which waits for the last topic's summary, up to the LLM timeout). A row is real-time when
every stream ended cleanly, under 1 % of frames were late, p95 partial <= chunk + 300 ms and p95
drain < 2 chunks + 1.5 s. Before the first measured row, one short warm-up stream loads what the
server loads on first use (speaker and text-embedding models, the LLM), so the rows are steady
state; `--serve-args` passes options to `steno serve` (e.g. captions only, or the int8 encoder).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from models.bundle import load_bundle
from streaming.audio import read_audio

PERCENTILES = (50, 90, 95, 99)
STOP_WAIT_S = 120  # after `stop`: the last final, then the note (its summary waits up to 20 s)
TONE_WORDS = "hello world steno captions meeting notes speech lecture stream batch model final".split()


def tone_script(seconds: float, seed: int) -> np.ndarray:
    """Tone-speech utterances of 1-3 words with 1.5 s pauses, about `seconds` long."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from make_tone_model import tone_speech

    rng, parts, total = np.random.default_rng(seed), [], 0
    while total < seconds * 16000:
        parts += [tone_speech(" ".join(rng.choice(TONE_WORDS, rng.integers(1, 4)))), np.zeros(24000, np.float32)]
        total += len(parts[-2]) + len(parts[-1])
    return np.concatenate(parts)[: int(seconds * 16000)]


def audio_scripts(samples: np.ndarray, rate: int, seconds: float, count: int = 8) -> list[np.ndarray]:
    """`count` rotations of one recording, each `seconds` long and starting at the quietest 100 ms
    of its k-th share of the file, so that streams sharing one file pause and end utterances at
    different moments, as independent speakers would, instead of all hitting the endpoint at once."""
    window = rate // 10
    power = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    energy = power[window:] - power[:-window]  # per 100 ms window, in one pass over the file
    share, scripts = len(samples) // count, []
    for k in range(count):
        lo = k * share
        start = lo + int(np.argmin(energy[lo:lo + share])) + window // 2 if k else 0
        scripts.append(np.resize(np.roll(samples, -start), int(seconds * rate)))
    return scripts


async def client(url: str, audio: np.ndarray, rate: int, frame_s: float, start_at: float) -> dict:
    """One real-time stream; returns send times per frame and events with receive times."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    step = int(rate * frame_s)
    sends, events, late = [], [], 0
    async with connect(url, max_size=None, compression=None) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": rate}))

        async def receive():
            async for message in ws:
                events.append((time.monotonic(), json.loads(message)))

        receiver = asyncio.create_task(receive())
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        began = stopped = time.monotonic()
        try:  # a stream the server ends or never closes fails the row instead of the sweep
            for i, offset in enumerate(range(0, len(pcm), step)):
                due = began + i * frame_s
                now = time.monotonic()
                if now > due + frame_s:
                    late += 1
                await asyncio.sleep(max(0.0, due - now))
                await ws.send(pcm[offset:offset + step].tobytes())
                sends.append(time.monotonic())
            stopped = time.monotonic()
            await ws.send(json.dumps({"type": "stop"}))
            await asyncio.wait_for(receiver, STOP_WAIT_S)
            unfinished = False
        except (TimeoutError, ConnectionClosed):
            unfinished = True
    return {"sends": sends, "events": events, "late": late, "frames": len(sends), "stopped": stopped,
            "unfinished": unfinished}


def send_time(result: dict, t: float, frame_s: float) -> float | None:
    """Wall time at which the audio up to stream time t had been sent."""
    index = max(0, math.ceil(t / frame_s) - 1)
    return result["sends"][index] if index < len(result["sends"]) else None


def word_latencies(result: dict, frame_s: float) -> tuple[list, list]:
    partial, final = [], []
    shown = [(t, e) for t, e in result["events"] if e["type"] in ("partial", "final")]
    for t_final, event in shown:
        if event["type"] != "final":
            continue
        for word in event["words"]:
            first = next(t for t, e in shown if any(w["word"] == word["word"] and abs(w["start"] - word["start"]) < 0.2
                                                 for w in e.get("words", ())))
            sent = send_time(result, word["end"], frame_s)
            if sent is not None:
                partial.append(first - sent)
        if event["endpoint"]["rule"] != "end_of_audio":  # finals the stop forced measure nothing
            sent = send_time(result, event["endpoint"]["at"], frame_s)
            if sent is not None:
                final.append(t_final - sent)
    return partial, final


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {f"p{p}": float("nan") for p in PERCENTILES}
    return {f"p{p}": float(np.percentile(values, p)) * 1000 for p in PERCENTILES}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, db: Path, threads: int, extra: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with log.open("w") as log_file:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-m", "streaming.cli", "serve", "--model", model, "--port", str(port),
                                 "--db", str(db), "--threads", str(threads), "--max-sessions", "1000", *extra],
                                stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"ws://127.0.0.1:{port}/v1/listen"
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


async def run_load(url: str, streams: int, audio: list[np.ndarray], rate: int, frame_s: float) -> list[dict]:
    start_at = time.monotonic() + 1.0
    # starts staggered over one frame, as independent clients would be
    return await asyncio.gather(*(client(url, audio[i % len(audio)], rate, frame_s, start_at + frame_s * i / streams)
                                  for i in range(streams)))


def thread_cpu(server: psutil.Process | None) -> dict[str, float]:
    """Server CPU seconds per thread group: the event loop ("main"), the named worker pools
    (streaming/threads.py: encoder, decoder, speakers, topics, summaries, io) and "other"
    (threads made by libraries: onnxruntime's and OpenBLAS's workers, uvloop's). Linux only ({} elsewhere)."""
    groups: dict[str, float] = {}
    if server is None:
        return groups
    for thread in server.threads():
        if thread.id == server.pid:
            name = "main"
        else:
            try:
                name = Path(f"/proc/{server.pid}/task/{thread.id}/comm").read_text().strip()
            except OSError:  # not Linux, or the thread just ended
                continue
            base, _, index = name.rpartition("_")
            name = base if base and index.isdigit() else "other"
        groups[name] = groups.get(name, 0.0) + thread.user_time + thread.system_time
    return groups


def measure(url: str, server: psutil.Process | None, streams: int, audio: list[np.ndarray], rate: int,
            frame_s: float, chunk_s: float) -> dict:
    rss_before = server.memory_info().rss if server else 0
    cpu_before = sum(server.cpu_times()[:2]) if server else 0.0
    threads_before = thread_cpu(server)
    began, client_cpu = time.monotonic(), time.process_time()
    results = asyncio.run(run_load(url, streams, audio, rate, frame_s))
    wall, client_cpu = time.monotonic() - began, time.process_time() - client_cpu
    cpu = sum(server.cpu_times()[:2]) - cpu_before if server else float("nan")
    rss_after = server.memory_info().rss if server else 0
    threads_after = thread_cpu(server)
    partial, final, note_lags, drain_lags = [], [], [], []
    for result in results:
        p, f = word_latencies(result, frame_s)
        partial += p
        final += f
        note = next((t for t, e in result["events"] if e["type"] == "note"), None)
        finals = [t for t, e in result["events"] if e["type"] == "final"]
        note_lags.append((note - result["stopped"]) if note else float("inf"))
        drain_lags.append(max(0.0, finals[-1] - result["stopped"]) if finals else note_lags[-1])
    audio_s = sum(len(r["sends"]) for r in results) * frame_s
    late = sum(r["late"] for r in results)
    frames = sum(r["frames"] for r in results)
    row = {"streams": streams, "words": len(partial), "partial_ms": percentiles(partial),
           "final_ms": percentiles(final), "cpu_rtf": cpu / audio_s, "cpu_percent": 100 * cpu / wall,
           "cpu_rtf_by_thread": {name: (seconds - threads_before.get(name, 0.0)) / audio_s
                                 for name, seconds in sorted(threads_after.items())},
           "client_cpu_percent": 100 * client_cpu / wall,
           "rss_mb_per_stream": (rss_after - rss_before) / 2 ** 20 / streams, "late_frames": late,
           "frames": frames, "drain_ms_p95": float(np.percentile(drain_lags, 95)) * 1000,
           "note_lag_ms_p95": float(np.percentile(note_lags, 95)) * 1000,
           "unfinished": sum(r["unfinished"] for r in results)}
    # keeping up: nothing sent late, partials within the goal, and the last final no later after the
    # last audio than the flush of two chunks and the endpoint's silence would explain
    row["realtime"] = (not row["unfinished"] and late <= 0.01 * frames
                       and row["partial_ms"]["p95"] <= chunk_s * 1000 + 300
                       and row["drain_ms_p95"] < 2000 * chunk_s + 1500)
    return row


def plot(rows: list[dict], chunk_ms: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["streams"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for p, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^--")):
        ax.plot(n, [r["partial_ms"][p] for r in rows], style, label=f"partial {p}")
    ax.plot(n, [r["final_ms"]["p95"] for r in rows], "d:", label="final p95 (after endpoint)")
    ax.axhline(chunk_ms + 300, color="red", lw=1, label=f"goal: chunk + 300 ms = {chunk_ms + 300:.0f} ms")
    ax.set_xlabel("concurrent real-time streams")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="bundle the server runs (and whose chunk size is used)")
    parser.add_argument("--streams", default="1,8,16,32")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--url", help="target a running server instead of starting one")
    parser.add_argument("--audio", help="WAV/FLAC to stream (default: tone speech)")
    parser.add_argument("--frame-ms", type=float, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--serve-args", default="", help="options for the started `steno serve`, one string")
    parser.add_argument("--out", type=Path, default=Path("artifacts/latency"))
    args = parser.parse_args()
    config = load_bundle(args.model).config
    chunk_s, frame_s = config.chunk_samples / config.sample_rate, args.frame_ms / 1000
    if args.audio:
        samples, rate = read_audio(args.audio)
        audio = audio_scripts(samples, rate, args.seconds)
    else:
        rate, audio = 16000, [tone_script(args.seconds, seed) for seed in range(8)]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = (None, args.url) if args.url else start_server(
            args.model, Path(tmp) / "notes.sqlite3", args.threads, shlex.split(args.serve_args), args.out / "server.log")
        server = psutil.Process(proc.pid) if proc else None
        try:
            asyncio.run(run_load(url, 1, [audio[0][: 4 * rate]], rate, frame_s))  # warm-up, not measured
            rows = []
            for n in (int(x) for x in args.streams.split(",")):
                row = measure(url, server, n, audio, rate, frame_s, chunk_s)
                rows.append(row)
                print(f"streams={n:4d} words={row['words']:5d} partial p50/p95/p99="
                      f"{row['partial_ms']['p50']:.0f}/{row['partial_ms']['p95']:.0f}/{row['partial_ms']['p99']:.0f} ms "
                      f"final p95={row['final_ms']['p95']:.0f} ms cpu_rtf={row['cpu_rtf']:.4f} "
                      f"cpu={row['cpu_percent']:.0f}% (clients {row['client_cpu_percent']:.0f}%) "
                      f"rss/stream={row['rss_mb_per_stream']:.1f} MB "
                      f"late={row['late_frames']}/{row['frames']} drain_p95={row['drain_ms_p95']:.0f} ms "
                      f"note_lag_p95={row['note_lag_ms_p95']:.0f} ms unfinished={row['unfinished']} "
                      f"realtime={row['realtime']}", flush=True)
                print("  cpu_rtf by thread: " + " ".join(f"{name}={value:.4f}" for name, value
                                                         in row["cpu_rtf_by_thread"].items()), flush=True)
        finally:
            if proc:  # a graceful stop waits for the sessions' last summaries; never leave it running
                proc.terminate()
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    (args.out / "latency.json").write_text(json.dumps({"model": args.model, "serve_args": args.serve_args,
                                                       "chunk_ms": chunk_s * 1000,
                                                       "frame_ms": args.frame_ms, "seconds": args.seconds,
                                                       "cpus": os.cpu_count(), "rows": rows}, indent=1))
    plot(rows, chunk_s * 1000, args.out / "latency.png",
         f"Steno latency under load: {Path(args.model).name}\n{args.serve_args or 'default serve options'}")
    ok = [r for r in rows if r["realtime"]]
    single, top = rows[0], max(ok, key=lambda r: r["streams"]) if ok else rows[0]
    print(f"wrote {args.out}/latency.json and latency.png")
    # latencies at the largest real-time N (the capacity claim); rtf of the first row (single stream)
    print(f"max_streams={top['streams'] if ok else 0} p95_partial_ms={top['partial_ms']['p95']:.0f} "
          f"p95_final_ms={top['final_ms']['p95']:.0f} single_p95_partial_ms={single['partial_ms']['p95']:.0f} "
          f"rtf={single['cpu_rtf']:.4f} chunk_ms={chunk_s * 1000:.0f}")


if __name__ == "__main__":
    main()
