"""`steno eval`: given tone speech and the tone fixture model, the WER is exactly what the
references say it should be, through the server's decoding path, with and without an LM."""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from make_tone_model import tone_speech
from model_fixtures import small_bundle  # noqa: F401  (fixture)

from models.evaluate import EvalOptions, Evaluator, evaluate
from streaming.cli import main as steno

TONE_MODEL = Path(__file__).parent / "data" / "tone_model"
# (spoken, reference): two references disagree with the audio on purpose
ITEMS = [("hello world", "Hello, world!"), ("meeting notes", "meeting notes"),
         ("quick brown fox", "quick brown fox"), ("lazy dog", "lazy cat"),
         ("stream batch final", "stream batch final"), ("speech model", "the speech model")]
REF_WORDS = 15
ERRORS = 2  # "cat" substituted, "the" deleted


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tone_eval")
    lines = []
    for i, (spoken, reference) in enumerate(ITEMS):
        sf.write(directory / f"item{i}.wav", tone_speech(spoken), 16000)
        lines.append(json.dumps({"id": f"item{i}", "audio": f"item{i}.wav", "text": reference,
                                 "family": "odd" if i % 2 else "even"}))
    (directory / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return directory / "manifest.jsonl"


def test_wer_of_the_tone_model(manifest, capsys):
    assert steno(["eval", str(manifest), "--model", str(TONE_MODEL), "--no-lm"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"wer=\d+\.\d{4} items=\d+", out[-1])
    assert out[-1] == f"wer={ERRORS / REF_WORDS:.4f} items={len(ITEMS)}"
    assert any(line.startswith("item3 ") and "lazy cat | lazy dog" in line for line in out)
    assert f"family=even: wer={0:.4f} items=3" in out  # items 0, 2, 4: all right
    assert f"family=odd: wer={2 / 7:.4f} items=3" in out  # items 1, 3, 5: 7 words, 2 errors
    assert any(line.startswith("rtf=") for line in out)


def test_greedy_decoding(manifest, capsys):
    assert steno(["eval", str(manifest), "--model", str(TONE_MODEL), "--greedy"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wer={ERRORS / REF_WORDS:.4f} items={len(ITEMS)}"


def test_streaming_equals_offline(manifest):
    wer, lines = evaluate(manifest, EvalOptions(model=TONE_MODEL, streaming_check=True), progress=False)
    assert wer == pytest.approx(ERRORS / REF_WORDS)
    assert "diff=0.0000 within_0.5%=True" in lines[-2]


@pytest.fixture
def lm_bundle(tmp_path) -> Path:
    """The tone model with a 3-gram LM of the spoken sentences in lm/."""
    pytest.importorskip("kenlm")
    from decoders.lm_build import build_lm, find_tool

    try:
        find_tool("lmplz")
    except FileNotFoundError:
        pytest.skip("KenLM tools not built (make dev)")
    bundle = tmp_path / "bundle"
    shutil.copytree(TONE_MODEL, bundle)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"{s}\n" for s, _ in ITEMS * 5 + [("hello there", ""), ("the model", "")] * 3))
    build_lm(corpus, bundle / "lm", order=3, progress=False)
    return bundle


def test_with_a_language_model_in_the_bundle(manifest, lm_bundle):
    wer, _ = evaluate(manifest, EvalOptions(model=lm_bundle), progress=False)
    assert wer == pytest.approx(ERRORS / REF_WORDS)


def test_tune_writes_the_best_fusion_weights_and_they_become_the_default(manifest, lm_bundle, capsys):
    # beta -40 makes every word cost more than the audio can pay for: the tuner must not pick it
    assert steno(["eval", str(manifest), "--model", str(lm_bundle), "--tune",
                  "--alphas", "0.5", "0.8", "--betas", "-40", "1.5"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len([line for line in out if line.startswith("alpha=")]) == 4
    assert out[-1].startswith("best alpha=") and "beta=1.5 " in out[-1]
    chosen = json.loads((lm_bundle / "lm" / "fusion.json").read_text())
    assert chosen["beta"] == 1.5 and chosen["alpha"] in (0.5, 0.8) and chosen["items"] == len(ITEMS)
    assert Evaluator(EvalOptions(model=lm_bundle)).decoder_options.beta == 1.5

    (lm_bundle / "lm" / "fusion.json").write_text(json.dumps({"alpha": 0.5, "beta": -40}))
    wer, _ = evaluate(manifest, EvalOptions(model=lm_bundle), progress=False)
    assert wer > 0.9  # the stored weights are what decoding uses
    assert steno(["eval", str(manifest), "--model", str(lm_bundle), "--beta", "1.5"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wer={ERRORS / REF_WORDS:.4f} items={len(ITEMS)}"

    (lm_bundle / "lm" / "fusion.json").write_text('{"alpha": "high"}')
    with pytest.raises(ValueError, match="fusion.json"):
        Evaluator(EvalOptions(model=lm_bundle))


def test_an_untrained_model_scores_badly(manifest, small_bundle):  # noqa: F811
    wer, lines = evaluate(manifest, EvalOptions(model=small_bundle, use_lm=False), progress=False)
    assert wer > 0.9 and lines[-1] == f"wer={wer:.4f} items={len(ITEMS)}"


def test_save_hyps_and_compare_two_models(manifest, small_bundle, tmp_path, capsys):  # noqa: F811
    saved = tmp_path / "tone.jsonl"
    assert steno(["eval", str(manifest), "--model", str(TONE_MODEL), "--no-lm", "--save-hyps", str(saved)]) == 0
    rows = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"item{i}" for i in range(len(ITEMS))]
    assert rows[3]["ref"] == "lazy cat" and rows[3]["hyp"] == "lazy dog"
    capsys.readouterr()
    assert steno(["eval", str(manifest), "--model", str(small_bundle), "--no-lm", "--compare", str(saved)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("wer=") and out[-2].startswith("compare: ")
    compare = dict(field.split("=", 1) for field in out[-2].split()[1:] if "=" in field)
    assert float(compare["other"]) == pytest.approx(ERRORS / REF_WORDS, abs=1e-4)
    assert compare["lower_in"] == "0.0%" and compare["items"] == str(len(ITEMS))


def test_compare_with_a_missing_file_is_a_clear_error(manifest, tmp_path):
    with pytest.raises(SystemExit, match="steno eval: .*missing.jsonl"):
        steno(["eval", str(manifest), "--model", str(TONE_MODEL), "--compare", str(tmp_path / "missing.jsonl")])

