"""What int8 quantisation costs a trained model: greedy WER of fp32 and int8 on the same audio.

    python -m bench.int8_accuracy --model BUNDLE (--manifest items.jsonl | --tone N)

`--manifest` takes JSONL lines with "audio" (path) and "text"; `--tone N` makes N tone-speech
utterances for a model trained by tests/make_tone_model.py. Greedy decoding isolates the acoustic
model (no LM to paper over the difference).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jiwer
import numpy as np

from models.bundle import load_bundle
from models.runtime import StreamingEncoder
from models.tokenizer import normalize_text
from streaming.audio import StreamResampler, read_audio


def greedy_text(encoder: StreamingEncoder, audio: np.ndarray) -> str:
    best = encoder.encode(audio).argmax(axis=1)
    blank = encoder.config.blank_id
    ids = [int(t) for i, t in enumerate(best) if t != blank and (i == 0 or best[i - 1] != t)]
    return encoder.bundle.tokenizer.decode(ids)


def load_items(args, sample_rate: int) -> list[tuple[np.ndarray, str]]:
    if args.tone:
        sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
        from make_tone_model import WORDS, tone_speech

        rng = np.random.default_rng(1234)
        texts = [" ".join(rng.choice(WORDS, rng.integers(2, 6))) for _ in range(args.tone)]
        return [(tone_speech(t), t) for t in texts]
    items = []
    for line in Path(args.manifest).read_text().splitlines():
        entry = json.loads(line)
        audio, rate = read_audio(Path(args.manifest).parent / entry["audio"])
        items.append((StreamResampler(rate, sample_rate).process(audio, last=True), entry["text"]))
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest")
    source.add_argument("--tone", type=int, help="number of tone-speech utterances")
    args = parser.parse_args()
    bundle = load_bundle(args.model)
    items = load_items(args, bundle.config.sample_rate)
    refs = [normalize_text(text) for _, text in items]
    wers = {}
    for precision in ("fp32", "int8"):
        encoder = StreamingEncoder(bundle, precision)
        hyps = [greedy_text(encoder, audio) for audio, _ in items]
        wers[precision] = jiwer.wer(refs, hyps)
        print(f"{precision}: greedy WER {100 * wers[precision]:.2f} % on {len(items)} items")
    print(f"wer_fp32={wers['fp32']:.4f} wer_int8={wers['int8']:.4f} "
          f"int8_wer_delta={wers['int8'] - wers['fp32']:+.4f} items={len(items)}")


if __name__ == "__main__":
    main()
