"""NeMo's own cache-aware streaming against Steno's ONNX runtime, on the same weights, side by side.

    python -m bench.nemo_rtf [--layers 16 --d-model 256] [--seconds 10] [--batches 1,8] [--threads 2]

Builds a cache-aware FastConformer-CTC of the given size with random weights (NeMo's own classes and
config; speed does not depend on the weights), imports it with `steno import-nemo`'s code, and streams
the same audio through both in one process:
- NeMo: `CacheAwareStreamingAudioBuffer` + `conformer_stream_step` (the loop of NeMo's
  speech_to_text_cache_aware_streaming_infer.py), batch = streams. Only the step loop is timed: the
  buffer computes every chunk's log-mels when the audio is appended, so NeMo's feature extraction
  is not counted (this favours NeMo).
- Steno: `StreamingEncoder.step` on raw PCM chunks (log-mels inside the graph), fp32 and int8.
RTF per stream = loop time / (streams x audio seconds). Needs the `nemo` extra.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from models.bundle import load_bundle
from models.runtime import StreamingEncoder

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
# the config the parity tests check import-nemo against, and NeMo's own streaming loop they compare with
from test_nemo_import import nemo_buffer, nemo_config, nemo_steps  # noqa: E402

SENTENCES = ["the quick brown fox jumps over the lazy dog", "streaming captions for lectures and meetings",
             "speech recognition with cached attention", "numbers one two three four five six seven"]


def build_checkpoint(out: Path, layers: int, d_model: int, att_context: list[int]) -> Path:
    import sentencepiece
    import torch
    from omegaconf import OmegaConf

    from models.nemo_import import require_nemo

    (out / "text.txt").write_text("\n".join(SENTENCES * 20))
    sentencepiece.SentencePieceTrainer.train(input=str(out / "text.txt"), model_prefix=str(out / "tokenizer"),
                                             vocab_size=64, model_type="bpe", minloglevel=2)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    (out / "vocab.txt").write_text("".join(sp.id_to_piece(i) + "\n" for i in range(sp.get_piece_size())))
    cfg = nemo_config("ctc", att_context, out)
    cfg["encoder"].update(n_layers=layers, d_model=d_model, n_heads=4, ff_expansion_factor=4,
                          subsampling_conv_channels=d_model, conv_kernel_size=9)
    torch.manual_seed(0)
    model = require_nemo().models.EncDecCTCModelBPE(cfg=OmegaConf.create(cfg))
    print(f"NeMo FastConformer-CTC: {layers} layers, d_model {d_model}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, att_context {att_context}")
    model.save_to(str(out / "model.nemo"))
    return out / "model.nemo"


def load_nemo(checkpoint: Path, att_context: list[int], threads: int):
    import torch

    from models.nemo_import import load_checkpoint

    torch.set_num_threads(threads)
    model = load_checkpoint(checkpoint)
    model.encoder.set_default_att_context_size(att_context)
    return model


def time_nemo(model, audio: np.ndarray, streams: int) -> float:
    buffer = nemo_buffer(model, audio, streams)  # log-mels computed here, untimed
    began = time.perf_counter()
    for _ in nemo_steps(model, buffer, streams):
        pass
    return time.perf_counter() - began


def time_steno(encoder: StreamingEncoder, audio: np.ndarray, streams: int) -> float:
    size, needed = encoder.chunk_samples, encoder.input_samples
    padded = np.pad(audio, (0, -len(audio) % size + needed - size))
    states = [encoder.new_stream() for _ in range(streams)]
    began = time.perf_counter()
    for start in range(0, len(padded) - needed + 1, size):
        encoder.step(states, np.repeat(padded[None, start:start + needed], streams, axis=0))
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--att-context", default="64,3", help="left,right frames (right+1 = chunk frames)")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    att_context = [int(x) for x in args.att_context.split(",")]
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(args.seconds * 16000))).astype(np.float32)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        from models.nemo_import import import_nemo

        checkpoint = build_checkpoint(Path(tmp), args.layers, args.d_model, att_context)
        bundle = load_bundle(import_nemo(checkpoint, Path(tmp) / "bundle", tuple(att_context)))
        chunk_ms = 1000 * bundle.config.chunk_samples / bundle.config.sample_rate
        print(f"chunk {chunk_ms:.0f} ms, {args.seconds:.0f} s of audio per stream, {args.threads} threads")
        print(f"{'runtime':>12} {'streams':>7} {'seconds':>8} {'rtf/stream':>10}")
        model = load_nemo(checkpoint, att_context, args.threads)
        time_nemo(model, audio[:16000], 1)  # warm-up
        for streams in (int(b) for b in args.batches.split(",")):
            times = {"nemo": time_nemo(model, audio, streams)}
            for precision in ("fp32", "int8"):
                encoder = StreamingEncoder(bundle, precision, threads=args.threads)
                time_steno(encoder, audio[:16000], streams)  # warm-up
                times[f"steno_{precision}"] = time_steno(encoder, audio, streams)
            for name, seconds in times.items():
                print(f"{name:>12} {streams:7d} {seconds:8.2f} {seconds / (streams * args.seconds):10.4f}")
            results[f"nemo_over_onnx_b{streams}"] = times["nemo"] / times["steno_fp32"]
            results[f"nemo_over_int8_b{streams}"] = times["nemo"] / times["steno_int8"]
    print(" ".join(f"{k}={v:.2f}" for k, v in results.items()))


if __name__ == "__main__":
    main()
