"""Topic segmentation quality: Pk and WindowDiff of the online tracker (streaming/topics.py) on
documents made by concatenating passages on different subjects, beside an equal-spacing baseline.

Text (Choi-style): every document is 3-6 passages of 4-10 sentences, each passage from a different
subject, taken from openly licensed text in Debian packages:
  bible     consecutive verses of one book (bible-kjv-text: 66 books)
  fortunes  quips of one fortune category (fortunes: food, law, science, sports, ...)
  wordnet   noun definitions of one lexicographer domain (wordnet-base: animal, food, body, ...)
Documents with `--seed 1` are for tuning (`--tune`); the reported ones use other seeds.

Spoken (`--spoken N`): N documents are played as tone speech (tests/make_tone_model.py) through a
real Steno server with the tone fixture model, one utterance per sentence; the `topic` events the
server sends are scored against the passages, at the level of final segments.

    python -m bench.topic_eval                  # text: 40 documents per source = 120
    python -m bench.topic_eval --spoken 4       # and 4 documents end to end through the server
    python -m bench.topic_eval --tune           # grid over the tracker's options on the tuning docs

The last line is `pk=… windowdiff=… baseline_pk=…` (text documents, all sources).
"""
from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from streaming.topics import (TopicOptions, default_k, equal_spacing, pk, segment_offline,
                              window_diff)

FORTUNES = Path("/usr/share/games/fortunes")
FORTUNE_SUBJECTS = ("food", "law", "science", "sports", "medicine", "politics", "pets", "computers",
                    "education", "love", "linux", "startrek", "literature", "work", "kids", "drugs")
WORDNET = Path("/usr/share/wordnet/data.noun")
LEXNAMES = {4: "act", 5: "animal", 6: "artifact", 8: "body", 9: "cognition", 10: "communication",
            12: "feeling", 13: "food", 14: "group", 15: "location", 17: "object", 18: "person",
            19: "phenomenon", 20: "plant", 21: "possession", 22: "process", 26: "state", 27: "substance"}
SOURCES = ("bible", "fortunes", "wordnet")


# ---------------------------------------------------------------------------------- corpora

@lru_cache(None)
def bible() -> dict[str, list[str]]:
    """Book -> verses (text only), in order."""
    out = subprocess.run(["bible", "-f", "Ge1:1-Re22:21"], capture_output=True, text=True, check=True).stdout
    books: dict[str, list[str]] = {}
    for line in out.splitlines():
        m = re.match(r"(\d?[A-Za-z]+)\d+:\d+ (.*)", line)
        if m:
            books.setdefault(m.group(1), []).append(m.group(2).strip())
    return books


@lru_cache(None)
def fortunes() -> dict[str, list[str]]:
    out = {}
    for name in FORTUNE_SUBJECTS:
        items = []
        for raw in (FORTUNES / name).read_text(errors="replace").split("\n%\n"):
            lines = [ln for ln in raw.splitlines() if not ln.strip().startswith("--")]
            text = " ".join(" ".join(lines).split())
            if 30 <= len(text) <= 300:
                items.append(text)
        out[name] = items
    return out


@lru_cache(None)
def wordnet() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in WORDNET.read_text(errors="replace").splitlines():
        if line.startswith(" ") or "|" not in line:
            continue
        fields, gloss = line.split("|", 1)
        lex = int(fields.split()[1])
        definition = gloss.split(";")[0].strip()
        if lex in LEXNAMES and len(definition.split()) >= 6:
            out.setdefault(LEXNAMES[lex], []).append(definition)
    return out


def passage(source: str, subject: str, length: int, rng: np.random.Generator) -> list[str]:
    if source == "bible":
        verses = bible()[subject]
        start = int(rng.integers(0, len(verses) - length))
        return verses[start:start + length]
    pool = fortunes()[subject] if source == "fortunes" else wordnet()[subject]
    return [pool[i] for i in rng.choice(len(pool), length, replace=False)]


def documents(source: str, n: int, seed: int) -> list[tuple[list[str], list[int]]]:
    """n documents of (sentences, passage sizes)."""
    rng = np.random.default_rng(seed)
    subjects = sorted(bible() if source == "bible" else fortunes() if source == "fortunes" else wordnet())
    docs = []
    for _ in range(n):
        chosen = rng.choice(subjects, int(rng.integers(3, 7)), replace=False)
        sentences, sizes = [], []
        for subject in chosen:
            part = passage(source, str(subject), int(rng.integers(4, 11)), rng)
            sentences += part
            sizes.append(len(part))
        docs.append((sentences, sizes))
    return docs


# ---------------------------------------------------------------------------------- scoring

def embed_all(docs, embedder) -> list[np.ndarray]:
    flat = [s for sentences, _ in docs for s in sentences]
    vectors = embedder.embed(flat)
    out, i = [], 0
    for sentences, _ in docs:
        out.append(vectors[i:i + len(sentences)])
        i += len(sentences)
    return out


def score(docs, vectors, options: TopicOptions, baseline_size: float) -> dict[str, float]:
    rows = []
    for (sentences, ref), emb in zip(docs, vectors):
        hyp = segment_offline(emb, options)
        k = default_k(ref)
        base = equal_spacing(len(sentences), baseline_size)
        oracle = equal_spacing(len(sentences), len(sentences) / len(ref))
        rows.append((pk(ref, hyp, k), window_diff(ref, hyp, k), pk(ref, base, k), window_diff(ref, base, k),
                     pk(ref, oracle, k), len(hyp), len(ref)))
    a = np.array(rows)
    return dict(pk=a[:, 0].mean(), windowdiff=a[:, 1].mean(), baseline_pk=a[:, 2].mean(),
                baseline_windowdiff=a[:, 3].mean(), oracle_count_baseline_pk=a[:, 4].mean(),
                topics_found=a[:, 5].mean(), topics_true=a[:, 6].mean(), documents=len(rows))


def fmt(result: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items())


def tune(embedder, per_source: int) -> None:
    docs = [d for s in SOURCES for d in documents(s, per_source, seed=1)]
    vectors = embed_all(docs, embedder)
    size = float(np.mean([x for _, sizes in docs for x in sizes]))
    results = []
    for window, delay, threshold, min_seg in itertools.product((2, 3, 4), (1, 2, 3), (0.1, 0.15, 0.2, 0.25, 0.3, 0.4),
                                                               (2, 3, 4)):
        options = TopicOptions(window=window, delay=delay, threshold=threshold, min_segments=min_seg)
        results.append((score(docs, vectors, options, size)["pk"], options))
    for value, options in sorted(results, key=lambda r: r[0])[:10]:
        print(f"pk={value:.3f} {options}")


# ---------------------------------------------------------------------------------- spoken

def spoken(docs, options: TopicOptions) -> dict[str, float]:
    """Tone speech of each document through a real server; scored at the level of finals."""
    import asyncio
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from server_fixtures import RunningServer, converse, server_options, utterances

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = RunningServer(server_options(Path(tmp), engine={"topics": options}))
        try:
            for sentences, sizes in docs:
                words = [" ".join(re.sub(r"[^a-z' ]", " ", s.lower()).split()[:8]) for s in sentences]
                audio = utterances(*[w for w in words if w])
                events = asyncio.run(converse(server.url(), audio))
                finals = [e for e in events if e["type"] == "final"]
                topics = {t["index"]: t for t in events if t["type"] == "topic"}
                if len(finals) != len(sentences):
                    print(f"  skipped: {len(finals)} finals for {len(sentences)} sentences", file=sys.stderr)
                    continue
                hyp = [t["end_segment"] - t["start_segment"] + 1 for t in sorted(topics.values(), key=lambda t: t["index"])]
                if sum(hyp) != len(sentences):
                    print(f"  topics cover {sum(hyp)} of {len(sentences)} finals", file=sys.stderr)
                    continue
                k = default_k(sizes)
                base = equal_spacing(len(sentences), float(np.mean(sizes)))
                rows.append((pk(sizes, hyp, k), window_diff(sizes, hyp, k), pk(sizes, base, k)))
        finally:
            server.close()
    a = np.array(rows) if rows else np.zeros((0, 3))
    return dict(pk=a[:, 0].mean() if rows else float("nan"), windowdiff=a[:, 1].mean() if rows else float("nan"),
                baseline_pk=a[:, 2].mean() if rows else float("nan"), documents=len(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-source", type=int, default=40, help="text documents per source")
    parser.add_argument("--spoken", type=int, default=0, help="documents end to end through the server")
    parser.add_argument("--tune", action="store_true", help="grid search on the tuning documents (seed 1)")
    args = parser.parse_args()

    from models.text_embedding import TextEmbedder, TextEmbedderOptions
    embedder = TextEmbedder(TextEmbedderOptions(threads=2))
    if args.tune:
        tune(embedder, args.per_source // 2)
        return
    options = TopicOptions()
    tuning = [d for s in SOURCES for d in documents(s, 20, seed=1)]
    size = float(np.mean([x for _, sizes in tuning for x in sizes]))   # the baseline's spacing
    print(f"tracker {options}; decision delay {options.decision_delay} segments; "
          f"baseline spacing {size:.2f} sentences (mean passage of the tuning documents)")
    all_docs, all_vectors = [], []
    for seed, source in enumerate(SOURCES, start=10):
        began = time.perf_counter()
        docs = documents(source, args.per_source, seed)
        vectors = embed_all(docs, embedder)
        all_docs += docs
        all_vectors += vectors
        print(f"{source:9s} {fmt(score(docs, vectors, options, size))} "
              f"({time.perf_counter() - began:.1f} s)")
    if args.spoken:
        began = time.perf_counter()
        docs = documents("wordnet", args.spoken, seed=20)
        print(f"spoken    {fmt(spoken(docs, options))} ({time.perf_counter() - began:.1f} s)")
    total = score(all_docs, all_vectors, options, size)
    print(f"all text  {fmt(total)}")
    print(f"pk={total['pk']:.3f} windowdiff={total['windowdiff']:.3f} baseline_pk={total['baseline_pk']:.3f}")


if __name__ == "__main__":
    main()
