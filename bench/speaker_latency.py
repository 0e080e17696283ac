"""Latency that speaker tagging adds to a final segment (ms, p50/p95), as the server runs it.

    python -m bench.speaker_latency [--repeat 5]

Per final, the session embeds the segment (ONNX GE2E, one thread) and clusters it in the speaker
thread while the store commits the text, then commits the label (`set_speaker`, one fsync), so
the added latency is ~ max(0, tag - commit) + the label commit. Both are timed here: `tag` on
segments of 0.5-20 s cut from the real call in ../shared/eval/real (or from synthetic speech when
it is absent), and `set_speaker` on a temporary SQLite file.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from models.speaker import SpeakerEncoder
from streaming.speakers import SpeakerOptions, SpeakerTracker
from streaming.store import NoteStore, Segment

LENGTHS = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0)
REAL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "real" / "pyannote_sample_2spk.wav"


def material() -> np.ndarray:
    if REAL.exists():
        import soundfile
        audio, _ = soundfile.read(REAL, dtype="float32")
        return np.tile(audio[int(6.5 * 16000):], 2)
    from models.speaker_dialogues import available_voices, make_dialogue
    return make_dialogue(available_voices()[:2], seed=0, turns=6).audio


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    audio, rng = material(), np.random.default_rng(0)
    encoder = SpeakerEncoder(threads=1)
    tracker = SpeakerTracker(encoder, SpeakerOptions())
    tracker.tag(audio[:32000], 0.0, 0)   # warm-up
    by_length, everything = {}, []
    for length in LENGTHS:
        n = int(length * 16000)
        times = []
        for _ in range(args.repeat):
            start = int(rng.integers(0, len(audio) - n))
            began = time.perf_counter()
            tracker.tag(audio[start:start + n], start / 16000)
            times.append(time.perf_counter() - began)
        by_length[length] = times
        everything += times
    with tempfile.TemporaryDirectory() as tmp:
        store = NoteStore(Path(tmp) / "notes.sqlite3")
        store.open_session("bench")
        commits = []
        for i in range(20):
            store.add_segment("bench", Segment(i, i, i + 1, "text"))
            began = time.perf_counter()
            store.set_speaker("bench", i, "Speaker 1")
            commits.append(time.perf_counter() - began)
        store.close()
    print("tag (embedding + clustering) per final segment, 1 onnxruntime thread:")
    for length, times in by_length.items():
        print(f"  {length:5.1f} s segment: p50 {1000 * np.median(times):6.1f} ms   p95 {1000 * np.percentile(times, 95):6.1f} ms")
    print(f"  all lengths:      p50 {1000 * np.median(everything):6.1f} ms   p95 {1000 * np.percentile(everything, 95):6.1f} ms")
    print(f"set_speaker commit (fsync): p50 {1000 * np.median(commits):.1f} ms   p95 {1000 * np.percentile(commits, 95):.1f} ms")
    added = 1000 * (np.percentile(everything, 95) + np.percentile(commits, 95))
    print(f"added latency per final (tag + label commit), p95 <= {added:.0f} ms")
    print(f"speaker_added_ms_p95={added:.0f} tag_ms_p50={1000 * np.median(everything):.1f} "
          f"tag_ms_p95={1000 * np.percentile(everything, 95):.1f} commit_ms_p95={1000 * np.percentile(commits, 95):.1f}")


if __name__ == "__main__":
    main()
