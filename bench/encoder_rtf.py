"""Encoder speed: real-time factor per stream at several batch sizes, fp32 against int8.

    python -m bench.encoder_rtf [--model BUNDLE] [--batches 1,8,32] [--threads 2]

Without --model it exports the default-size conformer with random weights (needs torch): speed
does not depend on the weights; the torch model's eager streaming step on the same weights is timed
beside the ONNX runtime, in the same process. RTF per stream = step time / (batch x chunk duration);
a batch keeps up with real time while step time < chunk duration. The paced rows give the CPU a
batch-1 step costs when calls come 100 ms apart, with onnxruntime's thread spinning off (as the
runtime sets it) and on (its default); the threads rows compare one onnxruntime thread against
--threads at each batch size (the runtime runs batches of up to 8 on one thread). Also prints how far int8 drifts from fp32 on the same audio
(on random weights that says little: the trained model's WER does).
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from models.bundle import load_bundle
from models.runtime import StreamingEncoder, session_options


def time_step(encoder: StreamingEncoder, batch: int, repeats: int, rng) -> float:
    streams = [encoder.new_stream() for _ in range(batch)]
    chunks = (0.1 * rng.standard_normal((batch, encoder.chunk_samples))).astype(np.float32)
    encoder.step(streams, chunks)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        encoder.step(streams, chunks)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def paced_step(encoder: StreamingEncoder, threads: int, spinning: bool, steps: int, rng,
               batch: int = 1) -> tuple[float, float]:
    """(CPU ms, wall ms) per step when steps come 100 ms apart, as a lightly loaded server calls
    them: with spinning on, onnxruntime's idle workers keep burning CPU after each call."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(encoder.bundle.encoder_path("fp32")), session_options(threads, spinning),
                                   providers=["CPUExecutionProvider"])
    feeds = {encoder.config.audio_input: (0.1 * rng.standard_normal((batch, encoder.input_samples))).astype(np.float32)}
    feeds |= {name: np.stack([value] * batch) for name, value in encoder.new_stream().caches.items()}
    session.run(None, feeds)
    cpu, wall = time.process_time(), 0.0
    for _ in range(steps):
        start = time.perf_counter()
        session.run(None, feeds)
        wall += time.perf_counter() - start
        time.sleep(0.1)
    return (time.process_time() - cpu) / steps * 1000, wall / steps * 1000


def int8_drift(fp32: StreamingEncoder, int8: StreamingEncoder, rng) -> dict[str, float]:
    audio = (0.1 * rng.standard_normal(10 * fp32.config.sample_rate)).astype(np.float32)
    a, b = fp32.encode(audio), int8.encode(audio)
    ac, bc = a - a.mean(0), b - b.mean(0)
    return {"kl_nats_per_frame": float((np.exp(a) * (a - b)).sum(1).mean()),
            "argmax_agreement": float((a.argmax(1) == b.argmax(1)).mean()),
            "timevarying_corr": float((ac * bc).sum() / np.sqrt((ac ** 2).sum() * (bc ** 2).sum()))}


def random_model():
    import torch

    from models.conformer import ConformerCTC, ConformerConfig
    from models.tokenizer import CharTokenizer

    torch.manual_seed(0)
    model = ConformerCTC(ConformerConfig(vocab_size=len(CharTokenizer().tokens))).eval()
    print(f"random-weight default model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    return model


def time_torch_step(model, batch: int, repeats: int, threads: int, rng) -> float:
    """The torch model's eager streaming step on the same weights, as a baseline for the runtime."""
    import torch

    torch.set_num_threads(threads)
    caches = [torch.zeros(batch, *s.shape, dtype=getattr(torch, s.dtype)) for s in model.cache_specs()]
    chunk = torch.from_numpy((0.1 * rng.standard_normal((batch, model.cfg.chunk_samples))).astype(np.float32))
    times = []
    with torch.inference_mode():
        model.step(chunk, *caches)
        for _ in range(repeats):
            start = time.perf_counter()
            model.step(chunk, *caches)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="bundle directory (default: export a random default-size model)")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        model = None
        if args.model is None:
            from models.export import export_bundle
            from models.tokenizer import CharTokenizer

            model = random_model()
            export_bundle(model, CharTokenizer(), tmp)
        bundle = load_bundle(args.model or tmp)
        encoders = {p: StreamingEncoder(bundle, p, threads=args.threads) for p in ("fp32", "int8")}
        chunk_s = bundle.config.chunk_samples / bundle.config.sample_rate
        sizes = {p: bundle.encoder_path(p).stat().st_size / 2 ** 20 for p in encoders}
        print(f"chunk {chunk_s * 1000:.0f} ms, {args.threads} threads; "
              f"encoder.onnx {sizes['fp32']:.1f} MiB, encoder.int8.onnx {sizes['int8']:.1f} MiB")
        print(f"{'precision':>9} {'batch':>5} {'step ms':>8} {'rtf/stream':>10} {'batch rtf':>9}")
        results = {}
        for precision, encoder in encoders.items():
            for batch in batches:
                step = time_step(encoder, batch, args.repeats, rng)
                results[f"rtf_{precision}_b{batch}"] = step / (batch * chunk_s)
                print(f"{precision:>9} {batch:>5} {step * 1000:8.1f} {step / (batch * chunk_s):10.4f} "
                      f"{step / chunk_s:9.3f}")
        if model is not None:  # same weights in torch: the eager step against the ONNX runtime
            for batch in batches:
                step = time_torch_step(model, batch, args.repeats, args.threads, rng)
                results[f"torch_over_onnx_b{batch}"] = step / (results[f"rtf_fp32_b{batch}"] * batch * chunk_s)
                print(f"{'torch':>9} {batch:>5} {step * 1000:8.1f} {step / (batch * chunk_s):10.4f} "
                      f"{step / chunk_s:9.3f}   (eager streaming step, {results[f'torch_over_onnx_b{batch}']:.2f}x "
                      f"the fp32 ONNX time)")
        for spinning in (False, True):  # the runtime turns spinning off; this is what that saves
            key = f"paced_cpu_ms_spin_{'on' if spinning else 'off'}"
            results[key], _ = paced_step(encoders["fp32"], args.threads, spinning, args.repeats * 2, rng)
            print(f"fp32 batch 1, one step per 100 ms, onnxruntime spinning {'on ' if spinning else 'off'}: "
                  f"{results[key]:.1f} CPU ms per step")
        if args.threads > 1:  # where the runtime's one-thread session for small batches pays
            print(f"fp32, one step per 100 ms: CPU ms / wall ms per step, 1 thread against {args.threads}")
            for batch in batches:
                one, many = (paced_step(encoders["fp32"], t, False, args.repeats * 2, rng, batch)
                             for t in (1, args.threads))
                results[f"paced_cpu_ratio_b{batch}"] = one[0] / many[0]
                print(f"  batch {batch:>3}: 1 thread {one[0]:6.1f} / {one[1]:6.1f}   {args.threads} threads "
                      f"{many[0]:6.1f} / {many[1]:6.1f}   CPU ratio {one[0] / many[0]:.2f}")
        drift = int8_drift(encoders["fp32"], encoders["int8"], rng)
        print("int8 vs fp32: " + ", ".join(f"{k} {v:.3f}" for k, v in drift.items()))
        speedup = results[f"rtf_fp32_b{batches[0]}"] / results[f"rtf_int8_b{batches[0]}"]
        print(" ".join(f"{k}={v:.4f}" for k, v in results.items())
              + f" int8_speedup_b{batches[0]}={speedup:.2f} int8_kl={drift['kl_nats_per_frame']:.4f}")


if __name__ == "__main__":
    main()
