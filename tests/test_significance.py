"""models/significance.py: the paired bootstrap separates a real WER difference from noise."""
from __future__ import annotations

import pytest

from models.significance import compare_with_saved, edit_counts, paired_bootstrap, save_hyps

REFS = [f"the meeting starts at {n} today" for n in ("one", "two", "three", "four", "five", "six")] * 5


def test_edit_counts_are_substitutions_deletions_and_insertions():
    errors, words = edit_counts(["a b c", "a b", ""], ["a x c d", "b", "extra words"])
    assert errors.tolist() == [2, 1, 2] and words.tolist() == [3, 2, 0]


def test_a_model_wrong_on_every_item_is_worse_for_sure():
    worse = [r.replace("meeting", "meat") for r in REFS]
    result = paired_bootstrap(REFS, worse, REFS)
    assert result.wer == pytest.approx(1 / 6) and result.other_wer == 0
    assert 0 < result.low <= result.high and result.better_share == 0.0


def test_two_models_wrong_on_different_items_of_equal_count_are_not_told_apart():
    a = [r.replace("today", "to day") if i % 2 else r for i, r in enumerate(REFS)]
    b = [r.replace("today", "to day") if i % 2 == 0 else r for i, r in enumerate(REFS)]
    result = paired_bootstrap(REFS, a, b)
    assert result.wer == pytest.approx(result.other_wer)
    assert result.low < 0 < result.high and 0.2 < result.better_share < 0.8


def test_saved_hypotheses_are_matched_by_id_and_reference(tmp_path):
    ids = [f"item{i}" for i in range(len(REFS))]
    save_hyps(tmp_path / "a.jsonl", ids[:10], REFS[:10], REFS[:10])
    result = compare_with_saved(tmp_path / "a.jsonl", ids, REFS, [r + " extra" for r in REFS])
    assert result.items == 10 and result.other_wer == 0 and result.better_share == 0
    with pytest.raises(ValueError, match="no item"):
        compare_with_saved(tmp_path / "a.jsonl", ids, [r.upper() for r in REFS], REFS)
