"""The ONNX streaming step, run chunk by chunk, computes what the torch model computes on the whole
utterance with the chunked attention mask; batching streams of different ages changes nothing."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from make_tone_model import tone_speech
from model_fixtures import model_and_bundle, small_bundle  # noqa: F401  (fixtures)
from models.bundle import load_bundle
from models.export import quantize_int8
from models.runtime import StreamingEncoder

TOLERANCE = 1e-4


def torch_full_forward(model, audio: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        log_probs, lengths = model(torch.from_numpy(audio)[None])
    return log_probs[0, : int(lengths[0])].numpy()


def test_streaming_onnx_equals_full_torch_forward(model_and_bundle):
    model, path = model_and_bundle
    encoder = StreamingEncoder(load_bundle(path))
    chunk, rng = encoder.chunk_samples, np.random.default_rng(1)
    # a few samples, exactly one chunk, whole chunks, ragged ends, and long enough to slide the
    # attention window past its left context several times
    window = (model.cfg.left_chunks + 1) * chunk
    for n in (37, chunk, 3 * chunk, 2 * chunk + 123, 4 * window + 999):
        audio = (0.1 * rng.standard_normal(n)).astype(np.float32)
        streamed, full = encoder.encode(audio), torch_full_forward(model, audio)
        assert streamed.shape == full.shape == (encoder.frames_for(n), model.cfg.vocab_size)
        assert np.abs(streamed - full).max() <= TOLERANCE, f"length {n}"


def test_streams_of_different_ages_batch_like_alone(small_bundle):
    encoder = StreamingEncoder(load_bundle(small_bundle))
    chunk, rng = encoder.chunk_samples, np.random.default_rng(2)
    # (start step, number of chunks): a joins first, b joins later, c leaves early
    plan = {"a": (0, 9), "b": (3, 5), "c": (1, 2)}
    audio = {k: (0.1 * rng.standard_normal(n * chunk)).astype(np.float32) for k, (_, n) in plan.items()}
    streams, outputs = {}, {k: [] for k in plan}
    for step in range(9):
        live = [k for k, (start, n) in plan.items() if start <= step < start + n]
        for k in live:
            streams.setdefault(k, encoder.new_stream())
        chunks = np.stack([audio[k][(step - plan[k][0]) * chunk:][:chunk] for k in live])
        for k, log_probs in zip(live, encoder.step([streams[k] for k in live], chunks)):
            outputs[k].append(log_probs)
    for k in plan:
        alone = encoder.encode(audio[k])
        assert np.abs(np.concatenate(outputs[k]) - alone).max() <= 1e-5, k


def test_step_rejects_wrong_chunk_shape(small_bundle):
    encoder = StreamingEncoder(load_bundle(small_bundle))
    stream = encoder.new_stream()
    before = {k: v.copy() for k, v in stream.caches.items()}
    with pytest.raises(ValueError, match="expected chunks of shape"):
        encoder.step([stream], np.zeros((1, encoder.chunk_samples - 1), np.float32))
    assert all(np.array_equal(before[k], stream.caches[k]) for k in before)


def test_int8_variant_tracks_fp32(small_bundle):
    """Random weights give nearly input-independent outputs, so absolute closeness says little;
    what a broken quantisation loses is the input-driven part: its correlation with fp32's."""
    bundle = load_bundle(small_bundle)
    audio = (0.1 * np.random.default_rng(3).standard_normal(48000)).astype(np.float32)
    audio[16000:32000] *= 10
    fp32 = StreamingEncoder(bundle, "fp32").encode(audio)
    int8 = StreamingEncoder(bundle, "int8").encode(audio)
    assert int8.shape == fp32.shape
    a, b = fp32 - fp32.mean(axis=0), int8 - int8.mean(axis=0)
    correlation = (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())
    assert correlation > 0.3, f"int8 output is unrelated to fp32 (correlation {correlation:.2f})"


def test_int8_keeps_a_trained_models_decisions(tmp_path):
    """On trained weights the int8 encoder must pick the same token nearly everywhere, quiet speech
    over a noise floor included: quantising the front-end's mel matmul (one int8 scale for a power
    spectrum) dropped this to 94 % here and to 57 % on the default-size tone model."""
    copy = tmp_path / "tone"
    shutil.copytree(Path(__file__).parent / "data" / "tone_model", copy)
    quantize_int8(copy / "encoder.onnx", copy / "encoder.int8.onnx")
    bundle = load_bundle(copy)
    rng = np.random.default_rng(9)
    speech = np.concatenate([tone_speech(t, rng) for t in ["hello world", "streaming captions", "quiet loud"]])
    audio = (0.1 * speech + 0.001 * rng.standard_normal(len(speech))).astype(np.float32)
    fp32 = StreamingEncoder(bundle, "fp32").encode(audio)
    int8 = StreamingEncoder(bundle, "int8").encode(audio)
    agreement = (fp32.argmax(1) == int8.argmax(1)).mean()
    assert agreement >= 0.98, f"int8 picks another token on {1 - agreement:.1%} of frames"


def test_runtime_imports_no_torch():
    code = ("import sys, models.runtime, models.bundle, models.tokenizer; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_small_batches_on_the_one_thread_session_match_the_pooled_session(small_bundle):
    """Batches up to single_thread_batch go to a one-thread session: same weights, same numbers."""
    encoder = StreamingEncoder(load_bundle(small_bundle), threads=2, providers=["CPUExecutionProvider"],
                               single_thread_batch=1)
    assert encoder.small_session is not encoder.session
    assert StreamingEncoder(load_bundle(small_bundle), threads=1).small_session.get_session_options() \
        .intra_op_num_threads == 1
    rng = np.random.default_rng(3)
    chunks = (0.1 * rng.standard_normal((3, 2, encoder.input_samples))).astype(np.float32)
    alone, paired = encoder.new_stream(), [encoder.new_stream(), encoder.new_stream()]
    for step in chunks:  # stream 0 of the pair gets what the lone stream gets
        one = encoder.step([alone], step[:1])           # batch 1: the one-thread session
        two = encoder.step(paired, step)                # batch 2: the pooled session
        assert np.abs(one[0] - two[0]).max() <= 1e-5
