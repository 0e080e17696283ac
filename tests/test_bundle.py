"""A bad bundle fails at load time with a message that names the file and the problem."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from model_fixtures import small_bundle  # noqa: F401  (fixture)
from models.bundle import BundleError, load_bundle
from models.runtime import StreamingEncoder


@pytest.fixture
def bundle_copy(small_bundle, tmp_path) -> Path:
    return Path(shutil.copytree(small_bundle, tmp_path / "bundle"))


def edit_config(path: Path, **changes) -> None:
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


def open_bundle(path: Path) -> StreamingEncoder:
    return StreamingEncoder(load_bundle(path), threads=1)


def test_good_bundle_opens(small_bundle):
    encoder = open_bundle(small_bundle)
    assert encoder.config.tokenizer == "characters"
    assert encoder.bundle.tokenizer.decode(encoder.bundle.tokenizer.encode("Hello, World")) == "hello world"


@pytest.mark.parametrize("name", ["config.json", "encoder.onnx", "tokens.txt"])
def test_missing_file_is_named(bundle_copy, name):
    (bundle_copy / name).unlink()
    with pytest.raises(BundleError, match=rf"{name}: missing"):
        load_bundle(bundle_copy)


def test_missing_int8_variant_is_named(bundle_copy):
    (bundle_copy / "encoder.int8.onnx").unlink()
    with pytest.raises(BundleError, match="int8 encoder not in this bundle"):
        StreamingEncoder(load_bundle(bundle_copy), precision="int8")


def test_not_a_directory(tmp_path):
    with pytest.raises(BundleError, match="not a model bundle directory"):
        load_bundle(tmp_path / "nowhere")


def test_wrong_cache_shape_is_named(bundle_copy):
    config = json.loads((bundle_copy / "config.json").read_text())
    cache = next(c for c in config["caches"] if c["name"] == "cache_k")
    cache["shape"][1] += 1
    (bundle_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match=r"input 'cache_k' is float32\[2, 9, 64\].*has tensor\(float\)\[2, 8, 64\]"):
        open_bundle(bundle_copy)


def test_cache_missing_from_graph_is_named(bundle_copy):
    config = json.loads((bundle_copy / "config.json").read_text())
    config["caches"][0]["name"] = "cache_audio_typo"
    (bundle_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match="no input 'cache_audio_typo'"):
        open_bundle(bundle_copy)


def test_sample_rate_disagreeing_with_the_graph_is_named(bundle_copy):
    # consistent inside config.json (8 kHz with 80 ms frames), but the graph was exported for 16 kHz
    edit_config(bundle_copy, sample_rate=8000, frame_duration=0.08)
    with pytest.raises(BundleError, match="sample_rate=8000 but encoder.onnx was exported with sample_rate=16000"):
        open_bundle(bundle_copy)


def test_sample_rate_disagreeing_with_chunk_size_is_named(bundle_copy):
    edit_config(bundle_copy, sample_rate=8000)
    with pytest.raises(BundleError, match="chunk_samples 2560 disagrees with .* 8000"):
        load_bundle(bundle_copy)


def test_unsupported_sample_rate_is_named(bundle_copy):
    edit_config(bundle_copy, sample_rate=44100)
    with pytest.raises(BundleError, match="sample_rate 44100 is not one of"):
        load_bundle(bundle_copy)


def test_vocabulary_size_mismatch_is_named(bundle_copy):
    lines = (bundle_copy / "tokens.txt").read_text().splitlines()
    (bundle_copy / "tokens.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(BundleError, match="28 tokens, config.json says vocab_size 29"):
        load_bundle(bundle_copy)


def test_garbled_tokens_file_is_named(bundle_copy):
    (bundle_copy / "tokens.txt").write_text("<blk> 0\na 5\n")
    with pytest.raises(BundleError, match=r"tokens.txt:2: expected '<token> 1'"):
        load_bundle(bundle_copy)


def test_invalid_json_is_named(bundle_copy):
    (bundle_copy / "config.json").write_text("{not json")
    with pytest.raises(BundleError, match="config.json: not valid JSON"):
        load_bundle(bundle_copy)


def test_missing_and_unknown_keys_are_named(bundle_copy):
    config = json.loads((bundle_copy / "config.json").read_text())
    del config["blank_id"]
    (bundle_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match=r"missing keys \['blank_id'\]"):
        load_bundle(bundle_copy)
    edit_config(bundle_copy, blank_id=0, chunk_size=3)
    with pytest.raises(BundleError, match=r"unknown keys \['chunk_size'\]"):
        load_bundle(bundle_copy)


def test_sentencepiece_bundle_needs_its_model(bundle_copy):
    edit_config(bundle_copy, tokenizer="sentencepiece")
    with pytest.raises(BundleError, match="tokenizer.model: missing"):
        load_bundle(bundle_copy)


def test_corrupt_onnx_is_named(bundle_copy):
    (bundle_copy / "encoder.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(BundleError, match="encoder.onnx: onnxruntime cannot load it"):
        open_bundle(bundle_copy)
