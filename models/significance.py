"""Is one model's WER really lower than another's on the same items? A paired bootstrap.

The real-speech set has 66 items (1 189 words), a third of them one speaker: a 2-point WER
difference there is about 24 words, which may be noise. Resampling the items (with replacement,
the same draw for both models) and recomputing both corpus WERs each time gives an interval for the
difference that accounts for that (Bisani & Ney 2004, "Bootstrap estimates for confidence intervals
in ASR performance evaluation").

`steno eval … --save-hyps A.jsonl` keeps one run's hypotheses; `steno eval … --compare A.jsonl`
prints this run against it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Comparison:
    wer: float           # this run
    other_wer: float     # the saved run
    low: float           # 95 % interval of (wer - other_wer)
    high: float
    better_share: float  # share of resamples in which this run's WER is lower
    items: int

    def line(self) -> str:
        return (f"compare: wer={self.wer:.4f} other={self.other_wer:.4f} diff={self.wer - self.other_wer:+.4f} "
                f"95%=[{self.low:+.4f}, {self.high:+.4f}] lower_in={self.better_share:.1%} items={self.items}")


def edit_counts(refs: list[str], hyps: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per item: word errors (substitutions + deletions + insertions) and reference words."""
    import jiwer

    errors, words = [], []
    for ref, hyp in zip(refs, hyps):
        n = len(ref.split())
        if n == 0:
            errors.append(len(hyp.split()))
        else:
            out = jiwer.process_words(ref, hyp)
            errors.append(out.substitutions + out.deletions + out.insertions)
        words.append(n)
    return np.array(errors, dtype=np.int64), np.array(words, dtype=np.int64)


def paired_bootstrap(refs: list[str], hyps: list[str], other_hyps: list[str], resamples: int = 2000,
                     seed: int = 0) -> Comparison:
    if not refs or len(refs) != len(hyps) or len(hyps) != len(other_hyps):
        raise ValueError("need the same, non-empty list of items for both runs")
    a, words = edit_counts(refs, hyps)
    b, _ = edit_counts(refs, other_hyps)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(refs), size=(resamples, len(refs)))
    total = np.maximum(words[draws].sum(axis=1), 1)
    diffs = (a[draws].sum(axis=1) - b[draws].sum(axis=1)) / total
    low, high = np.percentile(diffs, [2.5, 97.5])
    return Comparison(a.sum() / max(words.sum(), 1), b.sum() / max(words.sum(), 1), float(low), float(high),
                      float(np.mean(diffs < 0)), len(refs))


def save_hyps(path: Path, ids: list[str], refs: list[str], hyps: list[str]) -> None:
    with Path(path).open("w", encoding="utf-8") as out:
        for id_, ref, hyp in zip(ids, refs, hyps):
            out.write(json.dumps({"id": id_, "ref": ref, "hyp": hyp}) + "\n")


def compare_with_saved(path: Path, ids: list[str], refs: list[str], hyps: list[str]) -> Comparison:
    """This run against the run saved at `path`, on the items both decoded (matched by id and reference)."""
    saved = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            saved[row["id"]] = row
    shared = [i for i, id_ in enumerate(ids) if id_ in saved and saved[id_]["ref"] == refs[i]]
    if not shared:
        raise ValueError(f"{path}: no item of this run (same id and reference) in the saved run")
    return paired_bootstrap([refs[i] for i in shared], [hyps[i] for i in shared],
                            [saved[ids[i]]["hyp"] for i in shared])
