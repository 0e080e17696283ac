"""Speaker tagging accuracy: DER (pyannote.metrics) and the fraction of words given the right speaker.

    python -m bench.speaker_eval [--dialogues 8] [--threshold 0.28] [--turns 14]

Material: the real 2-speaker telephone call of ../shared/eval/real (pyannote's sample.wav, RTTM
and STM references) and synthetic dialogues among 2-3 of six TTS voices (models/speaker_dialogues).

No ASR is involved (the embedded ASR model is another issue): the tracker is fed the segment
boundaries an endpointer would give, and the words are the reference words with their times.
Two segmentations are scored:

* `turns`: one segment per reference turn (an ideal endpointer);
* `endpointer`: turns merged as Steno's endpointer merges them -- a gap under 1.0 s does not end
  an utterance, and an utterance is cut after 20 s -- so segments hold several speakers and the
  tracker's windows must find the changes.

Words right: each reference word (its time midpoint) gets the label of the hypothesis turn that
covers it (else of the nearest turn); the labels are mapped to the reference speakers one-to-one
so as to maximise the words right (Hungarian), and the fraction of words right is reported.
DER: pyannote.metrics' DiarizationErrorRate of the tracker's turns against the reference turns
(RTTM for the real call), with no collar and with the NIST 0.25 s collar.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile
from scipy.optimize import linear_sum_assignment

from models.speaker import SpeakerEncoder
from models.speaker_dialogues import RefTurn, _words, available_voices, make_dialogue
from streaming.speakers import SpeakerOptions, SpeakerTracker, Turn

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "real"
ENDPOINT_GAP_S, MAX_UTTERANCE_S = 1.0, 20.0


def endpointer_segments(turns: list[RefTurn], gap: float = ENDPOINT_GAP_S,
                        max_s: float = MAX_UTTERANCE_S) -> list[tuple[float, float]]:
    segments: list[list[float]] = []
    for t in sorted(turns, key=lambda t: t.start):
        if segments and t.start - segments[-1][1] < gap and t.end - segments[-1][0] <= max_s:
            segments[-1][1] = max(segments[-1][1], t.end)
        else:
            segments.append([t.start, t.end])
    out = []
    for a, b in segments:   # a merged run past max_s is cut every max_s seconds
        while b - a > max_s:
            out.append((a, a + max_s))
            a += max_s
        out.append((a, b))
    return out


def turn_segments(turns: list[RefTurn]) -> list[tuple[float, float]]:
    return [(t.start, t.end) for t in sorted(turns, key=lambda t: t.start)]


def run_tracker(tracker: SpeakerTracker, audio: np.ndarray, segments, rate: int = 16000):
    """Tag each segment in order; merges relabel earlier turns, as the session relabels segments."""
    hyp: list[Turn] = []
    latencies = []
    for index, (a, b) in enumerate(segments):
        clip = audio[int(a * rate):int(b * rate)]
        began = time.perf_counter()
        tagging = tracker.tag(clip, a, index)
        latencies.append(time.perf_counter() - began)
        for m in tagging.merges:
            hyp = [Turn(t.start, t.end, m.target if t.speaker == m.source else t.speaker) for t in hyp]
        hyp += tagging.turns
    return hyp, latencies


def words_right(ref: list[RefTurn], hyp: list[Turn]) -> tuple[float, int]:
    words = [(t.speaker, (w.start + w.end) / 2) for t in ref for w in t.words]
    if not words or not hyp:
        return 0.0, len(words)
    refs, hyps = sorted({s for s, _ in words}), sorted({t.speaker for t in hyp})
    counts = np.zeros((len(refs), len(hyps)))
    for speaker, mid in words:
        inside = [t for t in hyp if t.start <= mid < t.end]
        turn = inside[0] if inside else min(hyp, key=lambda t: min(abs(t.start - mid), abs(t.end - mid)))
        counts[refs.index(speaker), hyps.index(turn.speaker)] += 1
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / len(words)), len(words)


def der(ref: list[tuple[float, float, str]], hyp: list[Turn], collar: float) -> float:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference, hypothesis = Annotation(), Annotation()
    for i, (a, b, s) in enumerate(ref):
        reference[Segment(a, b), i] = s
    for i, t in enumerate(hyp):
        hypothesis[Segment(t.start, t.end), i] = t.speaker
    return float(DiarizationErrorRate(collar=collar)(reference, hypothesis))


def real_call() -> tuple[np.ndarray, list[RefTurn], list[tuple[float, float, str]]]:
    item = next(json.loads(line) for line in (EVAL / "manifest.jsonl").open()
                if json.loads(line)["audio"] == "pyannote_sample_2spk.wav")
    audio, rate = soundfile.read(EVAL / item["audio"], dtype="float32")
    assert rate == 16000
    turns = [RefTurn(t["speaker"], t["start"], t["end"], tuple(_words(t["text"], t["start"], t["end"])))
             for t in item["speakers"]]
    rttm = []
    for line in item["rttm"].splitlines():
        f = line.split()
        rttm.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return audio, turns, rttm


def score(encoder, options, audio, turns, rttm, mode: str) -> dict:
    segments = turn_segments(turns) if mode == "turns" else endpointer_segments(turns)
    tracker = SpeakerTracker(encoder, options)
    hyp, latencies = run_tracker(tracker, audio, segments)
    right, n_words = words_right(turns, hyp)
    return {"mode": mode, "segments": len(segments), "speakers": len(tracker.clustering.clusters),
            "true_speakers": len({t.speaker for t in turns}), "words_right": right, "words": n_words,
            "der": der(rttm, hyp, 0.0), "der_collar": der(rttm, hyp, 0.25),
            "latencies": latencies}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialogues", type=int, default=8)
    parser.add_argument("--turns", type=int, default=14)
    parser.add_argument("--threshold", type=float, default=SpeakerOptions.threshold)
    parser.add_argument("--window", type=float, default=SpeakerOptions.window_s)
    args = parser.parse_args(argv)
    options = replace(SpeakerOptions(), threshold=args.threshold, window_s=args.window)
    encoder = SpeakerEncoder()
    print(f"threshold {options.threshold}, window {options.window_s} s, max speakers {options.max_speakers}")
    print(f"{'material':34s} {'mode':10s} {'segs':>4s} {'spk':>7s} {'words':>5s} {'right':>7s} "
          f"{'DER':>6s} {'DER.25':>6s}")

    def show(name, r):
        print(f"{name:34s} {r['mode']:10s} {r['segments']:4d} {r['speakers']:3d}/{r['true_speakers']:<3d} "
              f"{r['words']:5d} {100 * r['words_right']:6.1f}% {100 * r['der']:5.1f}% {100 * r['der_collar']:5.1f}%")

    if (EVAL / "pyannote_sample_2spk.wav").exists():
        audio, turns, rttm = real_call()
        for mode in ("turns", "endpointer"):
            show("real: pyannote sample (2 spk)", score(encoder, options, audio, turns, rttm, mode))
    voices = available_voices()
    print(f"voices: {', '.join(voices)}")
    totals = {m: [0.0, 0, [], []] for m in ("turns", "endpointer")}
    for seed in range(args.dialogues):
        rng = np.random.default_rng(seed)
        k = 2 if seed % 2 == 0 else 3
        chosen = [voices[i] for i in rng.choice(len(voices), size=k, replace=False)]
        dialogue = make_dialogue(chosen, seed=seed, turns=args.turns)
        rttm = [(t.start, t.end, t.speaker) for t in dialogue.turns]
        for mode in ("turns", "endpointer"):
            r = score(encoder, options, dialogue.audio, list(dialogue.turns), rttm, mode)
            show(f"synthetic #{seed} {len(dialogue.audio) / 16000:.0f} s " + "+".join(v.split(":")[1][:6] for v in chosen),
                 r)
            t = totals[mode]
            t[0] += r["words_right"] * r["words"]
            t[1] += r["words"]
            t[2].append(r["der"])
            t[3] += r["latencies"]
    summary = []
    for mode, (right, words, ders, lat) in totals.items():
        if words:
            print(f"synthetic total, {mode:10s}: words right {100 * right / words:.1f}% of {words}, "
                  f"mean DER {100 * np.mean(ders):.1f}%, tag latency p95 {1000 * np.percentile(lat, 95):.0f} ms")
            summary.append(f"{mode}_words_right={right / words:.4f} {mode}_der={np.mean(ders):.4f}")
    print(" ".join(summary))


if __name__ == "__main__":
    main()
