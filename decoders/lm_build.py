"""`steno lm build`: a text corpus -> KenLM model directory the decoder loads (`lm.bin`, `unigrams.txt`).

Every line is normalised with `models.tokenizer.normalize_text`, the one normaliser the tokenizers
and the decoder share, so the LM's words are exactly the words the decoder spells. The normalised
text streams into KenLM's `lmplz` (modified Kneser-Ney, interpolated) and `build_binary` turns the
ARPA into the binary format `kenlm.Model` maps quickly: by default a trie with probabilities and
back-offs quantised to 8 bits, a third of the size of KenLM's probing hash table. On the embedded
model's dev set the quantised 5-gram decoded to the same WER (67.5 % against 67.6 %) at the same
speed (`bench.decoder_speed --model`: 0.070-0.074 ms/frame for both) as its probing twin
(models/TRAINING.md, ninth session); `quantize_bits=0` keeps the probing table.

Why the KenLM tools and not an estimator of our own: `lmplz` is the reference implementation of
modified Kneser-Ney (discounts estimated from counts-of-counts per order, interpolation, pruning) and
streams through disk, so corpora larger than memory work; a Python estimator would be slower, bounded
by RAM, and one more thing to get subtly wrong. The decoder reads KenLM's binary format anyway, and
kenlm's PyPI sdist (the source of the Python module) builds both tools with cmake in about a minute
(`decoders/build_kenlm_tools.sh`, run by `make dev`).
"""
from __future__ import annotations

import gzip
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tqdm import tqdm

from decoders.language_model import LM_FILENAME, UNIGRAMS_FILENAME
from models.tokenizer import normalize_text

log = logging.getLogger(__name__)
ARPA_FILENAME = "lm.arpa"


@dataclass(frozen=True)
class BuildReport:
    sentences: int
    words: int
    unigrams: int
    directory: Path


def find_tool(name: str) -> str:
    """A KenLM tool next to this Python (the project's venv) or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"KenLM's {name} not found: run `bash decoders/build_kenlm_tools.sh .venv` (`make dev` does)")
    return found


def build_lm(corpus: Path, directory: Path, order: int = 4, prune: list[int] | None = None,
             memory: str = "10%", keep_arpa: bool = False, progress: bool = True,
             quantize_bits: int = 8) -> BuildReport:
    """Build `directory/lm.bin` and `directory/unigrams.txt` from a text (or .gz) corpus.

    quantize_bits: 1-25 writes a trie whose probabilities and back-offs keep that many bits;
    0 writes KenLM's unquantised probing hash table."""
    if order < 2:
        raise ValueError(f"order must be >= 2, got {order}")
    if not 0 <= quantize_bits <= 25:
        raise ValueError(f"quantize bits must be 0 (no quantisation) or 1-25, got {quantize_bits}")
    if prune and (len(prune) > order or prune[0] != 0 or prune != sorted(prune)):
        raise ValueError("--prune takes up to ORDER non-decreasing counts starting with 0, e.g. 0 1 1")
    lmplz, build_binary = find_tool("lmplz"), find_tool("build_binary")
    directory.mkdir(parents=True, exist_ok=True)
    arpa = directory / ARPA_FILENAME
    command = [lmplz, "-o", str(order), "-S", memory, "--discount_fallback", "--arpa", str(arpa)]
    if prune:
        command += ["--prune", *map(str, prune)]
    counts: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(dir=directory) as scratch, \
            open(Path(scratch) / "lmplz.log", "w+") as lmplz_log:
        lmplz_run = subprocess.Popen([*command, "-T", scratch], stdin=subprocess.PIPE,
                                     stdout=lmplz_log, stderr=subprocess.STDOUT, text=True)
        try:
            sentences = _feed(corpus, lmplz_run.stdin, counts, progress)
        finally:
            lmplz_run.stdin.close()
            code = lmplz_run.wait()
        if code != 0:
            lmplz_log.seek(0)
            raise RuntimeError(f"lmplz failed ({code}):\n{lmplz_log.read()[-3000:]}")
    if sentences == 0:
        raise ValueError(f"{corpus} has no words after normalisation")
    layout = (["-S", memory, "-q", str(quantize_bits), "-b", str(quantize_bits), "trie"] if quantize_bits
              else ["probing"])
    done = subprocess.run([build_binary, *layout, str(arpa), str(directory / LM_FILENAME)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"build_binary failed ({done.returncode}):\n{done.stderr[-3000:]}")
    if not keep_arpa:
        arpa.unlink()
    (directory / UNIGRAMS_FILENAME).write_text("".join(f"{w}\n" for w in sorted(counts)),
                                               encoding="utf-8")
    report = BuildReport(sentences, sum(counts.values()), len(counts), directory)
    log.info("built %s: %d sentences, %d words, %d unigrams, order %d",
             directory, report.sentences, report.words, report.unigrams, order)
    return report


def _feed(corpus: Path, sink: IO[str], counts: Counter[str], progress: bool) -> int:
    """Normalise `corpus` line by line into `sink`, counting words; returns sentences written."""
    sentences = 0
    with open(corpus, "rb") as raw, tqdm(total=corpus.stat().st_size, unit="B", unit_scale=True,
                                        desc=f"normalising {corpus.name}", disable=not progress) as bar:
        lines = gzip.open(raw) if corpus.suffix == ".gz" else raw
        for number, line in enumerate(lines, 1):
            text = normalize_text(line.decode("utf-8", errors="replace"))
            if text:
                sink.write(text + "\n")
                counts.update(text.split())
                sentences += 1
            if number % 2000 == 0:
                bar.update(raw.tell() - bar.n)  # bytes of the (compressed) file read so far
        bar.update(bar.total - bar.n)
    return sentences
