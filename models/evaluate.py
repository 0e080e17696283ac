"""`steno eval MANIFEST.jsonl [--model DIR] [--no-lm | --greedy] [--int8] [--streaming-check]`: word error rate.

Every item is decoded the way the server decodes a stream: the bundle's ONNX encoder through
`models.runtime.StreamingEncoder`, chunk by chunk, and `decoders.StreamingBeamSearch` advanced
chunk by chunk (with the bundle's lm/ unless --no-lm), finalised at the end of the item. References
and hypotheses are normalised with `models.tokenizer.normalize_text` and scored with jiwer.

Printed: a per-item table, WER per `corpus` / `family` (when the manifest has them), the real-time
factor (decode seconds / audio seconds), and as the last line `wer=<x> items=<n>`. `--save-hyps F`
keeps the hypotheses; `--compare F` adds a paired-bootstrap line against such a file (is the
difference more than the items' noise? models/significance.py).

`--streaming-check` also decodes each item offline — the whole utterance's posteriors in one search
call, or with `--checkpoint CKPT` the torch model's full-utterance forward — and reports both WERs.

`--tune` grid-searches the LM weight alpha and word bonus beta on the manifest (a development set,
never the test set) and writes the best pair to the bundle's lm/fusion.json, which the server and
this command then use by default.
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from decoders.beam_search import StreamingBeamSearch
from decoders.language_model import FUSION_FILENAME, bundle_fusion
from decoders.options import DecoderOptions
from decoders.vocabulary import Vocabulary
from models.bundle import load_bundle
from models.runtime import StreamingEncoder
from models.tokenizer import normalize_text

GROUP_FIELDS = ("corpus", "family")


@dataclass(frozen=True)
class EvalOptions:
    model: Path
    use_lm: bool = True
    greedy: bool = False   # best-path decoding instead of the beam search (the no-LM baseline)
    precision: str = "fp32"
    threads: int = 2
    streaming_check: bool = False
    checkpoint: Path | None = None
    limit: int | None = None
    exclude: tuple[str, ...] = ()
    decoder: DecoderOptions | None = None  # None: the defaults with the bundle LM's tuned alpha/beta


@dataclass
class ItemResult:
    id: str
    duration: float
    seconds: float      # decode time (encoder + search)
    ref: str
    hyp: str
    groups: dict
    offline_hyp: str | None = None


class Evaluator:
    def __init__(self, options: EvalOptions):
        self.options = options
        self.bundle = load_bundle(options.model)
        self.encoder = StreamingEncoder(self.bundle, options.precision, options.threads)
        cfg = self.bundle.config
        self.vocabulary = Vocabulary(self.bundle.tokenizer.tokens, cfg.blank_id)
        self.lm, self.decoder_options = bundle_fusion(self.bundle.path / "lm", options.use_lm, options.decoder,
                                                      cfg.frame_duration)
        self.torch_model = None
        if options.streaming_check and options.checkpoint:
            from models.export import load_checkpoint

            self.torch_model, _ = load_checkpoint(options.checkpoint)

    def search(self, options: DecoderOptions | None = None) -> StreamingBeamSearch:
        return StreamingBeamSearch(self.vocabulary, options or self.decoder_options, self.lm)

    def stream_posteriors(self, audio: np.ndarray) -> list[np.ndarray]:
        """The server's encoder path: one step a chunk; the log-probs of each chunk's real frames."""
        enc = self.encoder
        tail = -len(audio) % enc.chunk_samples + self.bundle.config.right_context_samples
        padded = np.pad(audio, (0, tail))
        stream, real_frames, emitted, chunks = enc.new_stream(), enc.frames_for(len(audio)), 0, []
        for start in range(0, len(audio), enc.chunk_samples):
            log_probs = enc.step([stream], padded[None, start:start + enc.input_samples])[0]
            keep = log_probs[: max(0, real_frames - emitted)]
            emitted += len(log_probs)
            if len(keep):
                chunks.append(keep)
        return chunks

    def decode_chunks(self, chunks: list[np.ndarray], options: DecoderOptions | None = None) -> str:
        """The server's search path: advance chunk by chunk, finalise at the end."""
        search = self.search(options)
        for log_probs in chunks:
            search.advance(log_probs)
        return search.finalize().text

    def stream(self, audio: np.ndarray) -> str:
        chunks = self.stream_posteriors(audio)
        if self.options.greedy:
            return self.vocabulary.greedy(np.concatenate(chunks)) if chunks else ""
        return self.decode_chunks(chunks)

    def offline(self, audio: np.ndarray) -> str:
        if self.torch_model is not None:
            import torch

            with torch.no_grad():
                log_probs, lengths = self.torch_model(torch.from_numpy(audio)[None])
            return self.search().decode(log_probs[0, : int(lengths[0])].numpy()).text
        return self.search().decode(self.encoder.encode(audio)).text

    def load_audio(self, path: Path) -> np.ndarray:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        target = self.bundle.config.sample_rate
        return audio if rate == target else soxr.resample(audio, rate, target).astype(np.float32)

    def run(self, manifest: Path, progress: bool = True) -> list[ItemResult]:
        from tqdm import tqdm

        items = read_items(manifest, self.options.exclude)[: self.options.limit]
        results = []
        for item in tqdm(items, desc="eval", unit="utt", disable=not progress):
            audio = self.load_audio(item["path"])
            start = time.perf_counter()
            hyp = self.stream(audio)
            seconds = time.perf_counter() - start
            result = ItemResult(item["id"], len(audio) / self.bundle.config.sample_rate, seconds,
                                normalize_text(item["text"]), normalize_text(hyp),
                                {g: item[g] for g in GROUP_FIELDS if g in item})
            if self.options.streaming_check:
                result.offline_hyp = normalize_text(self.offline(audio))
            results.append(result)
        return results


def read_items(manifest: Path, exclude: tuple[str, ...] = ()) -> list[dict]:
    items = []
    for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        item = json.loads(line)
        path = Path(item["audio"])
        item["path"] = path if path.is_absolute() else manifest.parent / path
        item.setdefault("id", item.get("utt_id") or path.stem or str(n))
        if not any(x in str(item["audio"]) for x in exclude):
            items.append(item)
    return items


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    pairs = [(r, h) for r, h in zip(refs, hyps) if r]
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs])) if pairs else 0.0


def report(results: list[ItemResult], streaming_check: bool = False) -> list[str]:
    """The printed report; its last line is `wer=<x> items=<n>`."""
    lines = [f"{'id':<36} {'dur':>6} {'rtf':>6} {'wer':>6}  ref | hyp"]
    for r in results:
        item_wer = wer([r.ref], [r.hyp])
        lines.append(f"{r.id[:36]:<36} {r.duration:6.2f} {r.seconds / max(r.duration, 1e-9):6.3f} "
                     f"{item_wer:6.3f}  {r.ref[:60]} | {r.hyp[:60]}")
    for group in GROUP_FIELDS:
        groups = defaultdict(list)
        for r in results:
            if group in r.groups:
                groups[r.groups[group]].append(r)
        for name, members in sorted(groups.items()):
            lines.append(f"{group}={name}: wer={wer([m.ref for m in members], [m.hyp for m in members]):.4f} "
                         f"items={len(members)}")
    audio = sum(r.duration for r in results)
    lines.append(f"rtf={sum(r.seconds for r in results) / max(audio, 1e-9):.4f} audio_seconds={audio:.1f}")
    total = wer([r.ref for r in results], [r.hyp for r in results])
    if streaming_check:
        offline = wer([r.ref for r in results], [r.offline_hyp or "" for r in results])
        lines.append(f"streaming_wer={total:.4f} offline_wer={offline:.4f} diff={abs(total - offline):.4f} "
                     f"within_0.5%={abs(total - offline) <= 0.005}")
    lines.append(f"wer={total:.4f} items={len(results)}")
    return lines


def evaluate(manifest: str | Path, options: EvalOptions, progress: bool = True, save_hyps: Path | None = None,
             compare: Path | None = None) -> tuple[float, list[str]]:
    """WER and the report; `save_hyps` keeps this run's hypotheses (JSONL), `compare` adds a paired
    bootstrap of this run against hypotheses saved earlier (models/significance.py)."""
    from models.significance import compare_with_saved
    from models.significance import save_hyps as write_hyps

    results = Evaluator(options).run(Path(manifest), progress)
    ids, refs, hyps = [r.id for r in results], [r.ref for r in results], [r.hyp for r in results]
    lines = report(results, options.streaming_check)
    if compare is not None:  # before writing, so a run compared with its own file reads the earlier one
        lines.insert(-1, compare_with_saved(compare, ids, refs, hyps).line())
    if save_hyps is not None:
        write_hyps(save_hyps, ids, refs, hyps)
    return wer(refs, hyps), lines


def tune_fusion(manifest: str | Path, options: EvalOptions, alphas: list[float], betas: list[float],
                progress: bool = True) -> tuple[dict, list[str]]:
    """Grid-search alpha x beta on a development manifest; write the best to the bundle's lm/.

    The encoder runs once per item; only the search is repeated per pair. Returns the chosen
    {alpha, beta, wer, ...} (also written to lm/fusion.json) and the printed grid.
    """
    from tqdm import tqdm

    evaluator = Evaluator(replace(options, use_lm=True, streaming_check=False))
    if evaluator.lm is None:
        raise ValueError(f"{evaluator.bundle.path}: no lm/ directory to tune fusion weights for")
    items = read_items(Path(manifest), options.exclude)[: options.limit]
    refs, posteriors = [], []
    for item in tqdm(items, desc="encode", unit="utt", disable=not progress):
        refs.append(normalize_text(item["text"]))
        posteriors.append(evaluator.stream_posteriors(evaluator.load_audio(item["path"])))
    grid = {}
    for alpha, beta in tqdm([(a, b) for a in alphas for b in betas], desc="grid", disable=not progress):
        decoder = replace(evaluator.decoder_options, alpha=alpha, beta=beta)
        grid[alpha, beta] = wer(refs, [evaluator.decode_chunks(chunks, decoder) for chunks in posteriors])
    (alpha, beta), best = min(grid.items(), key=lambda kv: (kv[1], kv[0]))
    lines = [f"alpha={a:<5g} beta={b:<5g} wer={w:.4f}" for (a, b), w in grid.items()]
    chosen = {"alpha": alpha, "beta": beta, "wer": round(best, 4), "items": len(items),
              "tuned_on": Path(manifest).name}
    path = evaluator.bundle.path / "lm" / FUSION_FILENAME
    path.write_text(json.dumps(chosen, indent=1) + "\n")
    lines.append(f"best alpha={alpha:g} beta={beta:g} wer={best:.4f} items={len(items)} -> {path}")
    return chosen, lines
