"""The latency benchmark end to end on the tiny tone model: it starts a real server, streams, measures
and draws. Figures are not judged here (bench/RESULTS.md is where they live); that it measures is."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from server_fixtures import TONE_MODEL

from bench.latency import audio_scripts

ROOT = Path(__file__).parents[1]


def test_latency_bench_measures_every_stream(tmp_path):
    run = subprocess.run([sys.executable, "-m", "bench.latency", "--model", str(TONE_MODEL), "--streams", "1,3",
                          "--seconds", "6", "--serve-args", "--no-speakers --summaries none", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    last = dict(pair.split("=") for pair in run.stdout.strip().splitlines()[-1].split())
    assert set(last) == {"max_streams", "p95_partial_ms", "p95_final_ms", "single_p95_partial_ms", "rtf", "chunk_ms"}
    report = json.loads((tmp_path / "latency.json").read_text())
    assert [row["streams"] for row in report["rows"]] == [1, 3]
    by_streams = {row["streams"]: row for row in report["rows"]}
    if int(last["max_streams"]):  # the latencies quoted are the capacity row's, the rtf the single stream's
        assert last["p95_partial_ms"] == f"{by_streams[int(last['max_streams'])]['partial_ms']['p95']:.0f}"
    assert last["rtf"] == f"{by_streams[1]['cpu_rtf']:.4f}"
    for row in report["rows"]:
        assert row["unfinished"] == 0 and row["frames"] == row["streams"] * 60
        assert row["words"] > 0 and 0 < row["partial_ms"]["p50"] < 5000  # words were heard, on a sane clock
        assert row["cpu_rtf"] > 0 and row["drain_ms_p95"] >= 0
        by_thread = row["cpu_rtf_by_thread"]  # the worker pools are told apart by their OS names
        assert {"main", "encoder", "decoder", "io"} <= set(by_thread), by_thread
        assert by_thread["encoder"] > 0 and by_thread["decoder"] > 0
        # a breakdown of the whole: Linux counts each thread's CPU in 10 ms ticks, rounded per thread
        # (user and system, at both samples), so the groups may exceed the total by a few ticks each
        ticks_rtf = 4 * 0.01 * len(by_thread) / (row["frames"] * 0.1)
        assert sum(by_thread.values()) <= row["cpu_rtf"] * 1.05 + ticks_rtf
    assert (tmp_path / "latency.png").stat().st_size > 10_000
    assert "Steno listening" in (tmp_path / "server.log").read_text()


def test_streams_sharing_one_file_start_at_different_pauses():
    rate, rng = 16000, np.random.default_rng(0)
    parts = []  # 8 "utterances" of 1.5-3 s, each followed by a 0.8 s pause
    for _ in range(8):
        parts += [0.3 * rng.standard_normal(int(rng.uniform(1.5, 3.0) * rate)), np.zeros(int(0.8 * rate))]
    samples = np.concatenate(parts).astype(np.float32)
    scripts = audio_scripts(samples, rate, seconds=10)
    assert len(scripts) == 8 and all(len(s) == 10 * rate for s in scripts)
    assert len({s[: rate].tobytes() for s in scripts}) == 8  # eight different openings
    for script in scripts[1:]:
        assert not script[: rate // 20].any()  # each opens inside a pause, not mid-word
