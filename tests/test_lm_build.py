"""`steno lm build`: corpus -> normalised text -> KenLM binary + unigram list the decoder loads."""
from __future__ import annotations

import argparse
import gzip
import subprocess
import time
from pathlib import Path

import kenlm
import numpy as np
import pytest

from decoders import cli
from decoders.language_model import KenLMLanguageModel

CORPUS = """The Old Farmer's dog -- barked!
the old farmer's dog barked at the moon.
A DOG barked; the moon was bright.

Naïve café owners opened early.
"""


def steno_lm(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="steno")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS * 20, encoding="utf-8")
    return path


def test_build_writes_a_model_and_a_normalised_unigram_list(corpus, tmp_path, capsys):
    out = tmp_path / "lm"
    assert steno_lm("lm", "build", str(corpus), "-o", str(out), "--order", "3") == 0
    assert sorted(p.name for p in out.iterdir()) == ["lm.bin", "unigrams.txt"]
    unigrams = (out / "unigrams.txt").read_text().split()
    assert unigrams == sorted(["the", "old", "farmer's", "dog", "barked", "at", "moon", "a", "was",
                               "bright", "naive", "cafe", "owners", "opened", "early"])
    assert kenlm.Model(str(out / "lm.bin")).order == 3
    assert "80 sentences" in capsys.readouterr().out


def test_gzipped_corpora_give_the_same_model(corpus, tmp_path):
    packed = tmp_path / "corpus.txt.gz"
    packed.write_bytes(gzip.compress(corpus.read_bytes()))
    for source, out in ((corpus, "plain"), (packed, "packed")):
        steno_lm("lm", "build", str(source), "-o", str(tmp_path / out), "--order", "3")
    assert (tmp_path / "plain/unigrams.txt").read_text() == (tmp_path / "packed/unigrams.txt").read_text()
    assert (tmp_path / "plain/lm.bin").read_bytes() == (tmp_path / "packed/lm.bin").read_bytes()


def test_the_model_prefers_the_corpus_word_order(corpus, tmp_path):
    out = tmp_path / "lm"
    steno_lm("lm", "build", str(corpus), "-o", str(out), "--keep-arpa")
    model = kenlm.Model(str(out / "lm.bin"))
    assert model.score("the old farmer's dog barked") > model.score("dog the barked farmer's old") + 3
    assert (out / "lm.arpa").read_text().startswith("\\data\\\nngram 1=18")
    lm = KenLMLanguageModel.from_dir(out)  # what the decoder loads
    assert lm.is_known("moon") and not lm.is_known("sun")
    assert lm.is_prefix("farm") and not lm.is_prefix("xyz")


def test_pruning_drops_rare_ngrams(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a b c\n" * 50 + "a c b\n", encoding="utf-8")
    sizes = {}
    for prune in ([], ["--prune", "0", "1", "1"]):
        out = tmp_path / f"lm{len(prune)}"
        steno_lm("lm", "build", str(corpus), "-o", str(out), "--order", "3", "--keep-arpa", *prune)
        sizes[len(prune)] = (out / "lm.arpa").read_text().count("\n")
    assert sizes[4] < sizes[0]


def test_the_quantised_trie_is_smaller_and_scores_like_the_probing_table(tmp_path):
    """The default layout (8-bit trie) against `--quantize 0` (KenLM's probing table), same ARPA."""
    corpus = tmp_path / "corpus.txt"
    words = "the old farmer's dog barked at the bright moon while owners opened early".split()
    rng = np.random.default_rng(0)
    corpus.write_text("".join(" ".join(rng.choice(words, rng.integers(3, 9))) + "\n" for _ in range(3000)))
    models = {}
    for bits in ("8", "0"):
        out = tmp_path / f"q{bits}"
        steno_lm("lm", "build", str(corpus), "-o", str(out), "--quantize", bits, "--keep-arpa")
        models[bits] = out
    assert (models["8"] / "lm.arpa").read_bytes() == (models["0"] / "lm.arpa").read_bytes()
    assert (models["8"] / "lm.bin").stat().st_size < 0.5 * (models["0"] / "lm.bin").stat().st_size
    trie, probing = (kenlm.Model(str(models[b] / "lm.bin")) for b in ("8", "0"))
    for sentence in ("the old farmer's dog barked", "moon the early owners", "dog dog dog dog"):
        assert trie.score(sentence) == pytest.approx(probing.score(sentence), abs=0.05 * len(sentence.split()))
    assert trie.score("the old farmer's dog barked") > trie.score("barked dog farmer's old the")


@pytest.mark.parametrize("argv, message", [
    (["--order", "1"], "order"),
    (["--prune", "1", "1"], "prune"),
    (["--quantize", "26"], "quantize"),
])
def test_bad_options_exit_with_a_message(corpus, tmp_path, argv, message):
    with pytest.raises(SystemExit, match=message):
        steno_lm("lm", "build", str(corpus), "-o", str(tmp_path / "lm"), *argv)


def test_missing_or_empty_corpora_exit_with_a_message(tmp_path):
    with pytest.raises(SystemExit, match="no such corpus"):
        steno_lm("lm", "build", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "lm"))
    empty = tmp_path / "empty.txt"
    empty.write_text("... !!!\n")
    with pytest.raises(SystemExit, match="no words"):
        steno_lm("lm", "build", str(empty), "-o", str(tmp_path / "lm"))


def test_tool_build_script_is_idempotent():
    started = time.monotonic()
    done = subprocess.run(["bash", "decoders/build_kenlm_tools.sh", ".venv"], capture_output=True)
    assert done.returncode == 0 and time.monotonic() - started < 5  # tools exist: nothing rebuilt
