"""A NeMo cache-aware FastConformer, imported with `steno import-nemo`, streams in Steno's runtime what
NeMo's own streaming loop computes on the same audio; checkpoints Steno cannot stream are refused
with a message saying what is needed.

No download: tiny CTC and hybrid RNNT/CTC models are built from in-memory configs with random weights
and a tiny sentencepiece tokenizer, saved as .nemo files, imported, and compared with NeMo's
`CacheAwareStreamingAudioBuffer(pad_and_drop_preencoded=True)` + `conformer_stream_step` loop.
"""
from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from models.bundle import load_bundle
from models.runtime import StreamingEncoder

needs_nemo = pytest.mark.skipif(importlib.util.find_spec("nemo") is None,
                                reason="NeMo is not installed: pip install -e '.[nemo]' to run the NeMo import tests")
pytestmark = pytest.mark.filterwarnings("ignore")

TOLERANCE = 1e-3                      # max |delta log-prob| allowed (measured: ~2e-6)
MULTI = [[8, 3], [8, 1], [8, 0]]      # a multi-look-ahead model: 320, 160 and 80 ms chunks
SINGLE = [[12, 5]]                    # one look-ahead only: 480 ms chunks
SENTENCES = ["the quick brown fox jumps over the lazy dog", "hello world this is steno speaking",
             "streaming speech recognition with caches", "numbers one two three four five six"]


# --- building tiny NeMo checkpoints -------------------------------------------------------------------

def nemo_config(kind: str, att_context: list, tokenizer_dir: Path, offline: bool = False) -> dict:
    ctc_head = {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": None,
                "num_classes": -1, "vocabulary": []}
    encoder = {"_target_": "nemo.collections.asr.modules.ConformerEncoder", "feat_in": 80, "feat_out": -1,
               "n_layers": 2, "d_model": 32, "subsampling": "dw_striding", "subsampling_factor": 8,
               "subsampling_conv_channels": 16, "causal_downsampling": not offline, "ff_expansion_factor": 2,
               "self_attention_model": "rel_pos", "n_heads": 2, "att_context_size": att_context,
               "att_context_style": "regular" if offline else "chunked_limited", "xscaling": True,
               "untie_biases": True, "pos_emb_max_len": 5000, "conv_kernel_size": 9, "conv_norm_type": "layer_norm",
               "conv_context_size": None if offline else "causal", "dropout": 0.0, "dropout_pre_encoder": 0.0,
               "dropout_emb": 0.0, "dropout_att": 0.0}
    cfg = {"sample_rate": 16000, "tokenizer": {"dir": str(tokenizer_dir), "type": "bpe"},
           # as NVIDIA's streaming configs: no normalisation, dither (off in eval), no pad_to
           "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                            "sample_rate": 16000, "normalize": "NA", "window_size": 0.025, "window_stride": 0.01,
                            "window": "hann", "features": 80, "n_fft": 512, "frame_splicing": 1,
                            "dither": 1e-5, "pad_to": 0},
           "encoder": encoder, "decoder": ctc_head, "decoding": {"strategy": "greedy"}, "optim": None}
    if kind in ("hybrid", "rnnt"):
        cfg["decoder"] = {"_target_": "nemo.collections.asr.modules.RNNTDecoder", "blank_as_pad": True,
                          "prednet": {"pred_hidden": 32, "pred_rnn_layers": 1, "dropout": 0.0}}
        cfg["joint"] = {"_target_": "nemo.collections.asr.modules.RNNTJoint", "log_softmax": None,
                        "jointnet": {"joint_hidden": 32, "activation": "relu", "dropout": 0.0}}
        cfg["decoding"] = {"strategy": "greedy_batch", "greedy": {"max_symbols": 5}}
        cfg["loss"] = {"loss_name": "default"}
        cfg["model_defaults"] = {"enc_hidden": 32, "pred_hidden": 32}
    if kind == "hybrid":
        cfg["aux_ctc"] = {"ctc_loss_weight": 0.3, "decoder": ctc_head, "decoding": {"strategy": "greedy"}}
    return cfg


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    import sentencepiece

    out = tmp_path_factory.mktemp("nemo_tokenizer")
    (out / "text.txt").write_text("\n".join(SENTENCES * 10))
    sentencepiece.SentencePieceTrainer.train(input=str(out / "text.txt"), model_prefix=str(out / "tokenizer"),
                                             vocab_size=40, model_type="bpe", minloglevel=2)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    (out / "vocab.txt").write_text("".join(sp.id_to_piece(i) + "\n" for i in range(sp.get_piece_size())))
    return out


@pytest.fixture(scope="module")
def make_checkpoint(tmp_path_factory, tokenizer_dir):
    """(kind, att_context, offline) -> a saved .nemo file, built once per module."""
    built: dict[tuple, Path] = {}

    def make(kind: str, att_context: list, offline: bool = False) -> Path:
        key = (kind, str(att_context), offline)
        if key not in built:
            import torch
            from omegaconf import OmegaConf

            from models.nemo_import import require_nemo

            models = require_nemo().models
            cls = {"ctc": models.EncDecCTCModelBPE, "hybrid": models.EncDecHybridRNNTCTCBPEModel,
                   "rnnt": models.EncDecRNNTBPEModel}[kind]
            torch.manual_seed(len(built))
            model = cls(cfg=OmegaConf.create(nemo_config(kind, att_context, tokenizer_dir, offline)))
            if kind != "rnnt":  # sharper posteriors than random init, so greedy text depends on the audio
                head = model.ctc_decoder if kind == "hybrid" else model.decoder
                with torch.no_grad():
                    for p in head.parameters():
                        p.mul_(8.0)
            built[key] = tmp_path_factory.mktemp(f"nemo_{kind}") / f"{kind}.nemo"
            model.save_to(str(built[key]))
        return built[key]

    return make


# --- NeMo's own streaming, the reference ---------------------------------------------------------------

def nemo_buffer(model, audio: np.ndarray, streams: int):
    """NeMo's CacheAwareStreamingAudioBuffer holding `audio` once per stream (it computes the log-mels now)."""
    from nemo.collections.asr.parts.utils.streaming_utils import CacheAwareStreamingAudioBuffer

    buffer = CacheAwareStreamingAudioBuffer(model, pad_and_drop_preencoded=True)
    for _ in range(streams):
        buffer.append_audio(audio)
    return buffer


def nemo_steps(model, buffer, streams: int = 1):
    """NeMo's own cache-aware loop (speech_to_text_cache_aware_streaming_infer.py): per chunk, the
    log-probs [streams, T, V] and the valid frame count of the first stream."""
    import torch

    channel, time, channel_len = model.encoder.get_initial_cache_state(batch_size=streams)
    drop = model.encoder.streaming_cfg.drop_extra_pre_encoded  # the same on every step, the first too
    with torch.inference_mode():
        for chunk, lengths in buffer:
            _, _, channel, time, channel_len, _, log_probs, encoded_len = model.conformer_stream_step(
                processed_signal=chunk, processed_signal_length=lengths, cache_last_channel=channel,
                cache_last_time=time, cache_last_channel_len=channel_len,
                keep_all_outputs=buffer.is_buffer_empty(), drop_extra_pre_encoded=drop,
                return_transcription=False, return_log_probs=True)
            yield log_probs, int(encoded_len[0])


def nemo_reference(checkpoint: Path, att_context: tuple[int, int]):
    """The checkpoint as NeMo streams it: a function audio -> (log-probs [T, V], frames per NeMo chunk)."""
    from models.nemo_import import load_checkpoint

    model = load_checkpoint(checkpoint)
    if hasattr(model, "ctc_decoder"):
        model.change_decoding_strategy(decoder_type="ctc", verbose=False)
    model.encoder.set_default_att_context_size(list(att_context))

    def stream(audio: np.ndarray) -> tuple[np.ndarray, list[int]]:
        steps = nemo_steps(model, nemo_buffer(model, audio, 1))
        out = [log_probs[0, :length].numpy() for log_probs, length in steps]
        return np.concatenate(out), [len(o) for o in out]

    return stream


def make_audio(n: int, seed: int) -> np.ndarray:
    """Noise bursts, tones and silence at varying levels: inputs that move a random network around."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    audio = 0.05 * rng.standard_normal(n) + 0.2 * np.sin(2 * np.pi * (200 + 600 * t) * t)
    envelope = np.repeat(rng.uniform(0, 2, size=n // 1600 + 1), 1600)[:n]
    return (audio * envelope).astype(np.float32)


def greedy_text(log_probs: np.ndarray, tokenizer) -> str:
    ids = log_probs.argmax(axis=-1)
    collapsed = [int(i) for k, i in enumerate(ids) if k == 0 or i != ids[k - 1]]
    return tokenizer.decode(collapsed)


def report(case: str, what: str, delta: float, same_text: bool, text: str = "") -> None:
    print(f"\n[nemo parity] {case:<22} {what:<36} max|dlogp| {delta:.2e}  same greedy text: {same_text} {text!r}")


# --- the front-end -------------------------------------------------------------------------------------

@needs_nemo
@pytest.mark.parametrize("exact_pad, preemph", [(False, 0.97), (True, 0.97), (False, None)])
def test_chunked_log_mels_equal_nemos_whole_signal_features(exact_pad, preemph):
    """NeMo computes log-mels of the whole signal; the graph's front-end, fed chunk by chunk with its
    audio cache and right context, gives the same frames (all but the last two, which see the end)."""
    import torch
    from nemo.collections.asr.parts.preprocessing.features import FilterbankFeatures

    from models.nemo_graph import NemoLogMel

    featurizer = FilterbankFeatures(sample_rate=16000, n_window_size=400, n_window_stride=160, n_fft=512,
                                    nfilt=80, dither=0.0, pad_to=0, normalize=None, preemph=preemph,
                                    exact_pad=exact_pad).eval()
    frames = 8
    logmel = NemoLogMel(featurizer, frames)
    spec, chunk = logmel.spec, frames * 160
    right = spec.right_context_samples(frames)
    audio = make_audio(7 * chunk + 555, 5)
    with torch.no_grad():
        whole, length = featurizer(torch.from_numpy(audio)[None], torch.tensor([len(audio)]))
        padded = np.concatenate([np.zeros(spec.context_samples, np.float32), audio,
                                 np.zeros(-len(audio) % chunk + right, np.float32)])
        chunks = [logmel(torch.from_numpy(padded[None, k * chunk: (k + 1) * chunk + spec.context_samples + right]))
                  for k in range(len(audio) // chunk + 1)]
    streamed = torch.cat(chunks, dim=2)[0].numpy()
    n = int(length[0]) - 2
    delta = np.abs(streamed[:, :n] - whole[0, :, :n].numpy()).max()
    print(f"\n[nemo front-end] exact_pad={exact_pad} preemph={preemph}: max|d log-mel| {delta:.1e}")
    assert delta <= 1e-3


# --- parity ------------------------------------------------------------------------------------------

CASES = [("ctc", MULTI, (8, 3)), ("ctc", MULTI, (8, 0)), ("hybrid", MULTI, (8, 1)), ("hybrid", SINGLE, (12, 5))]


@needs_nemo
@pytest.mark.parametrize("kind, contexts, att_context", CASES, ids=[f"{k}-{a[0]},{a[1]}" for k, _, a in CASES])
def test_streaming_matches_nemo_cache_aware_loop(make_checkpoint, tmp_path, kind, contexts, att_context):
    from models.nemo_import import import_nemo

    checkpoint = make_checkpoint(kind, contexts)
    bundle = load_bundle(import_nemo(checkpoint, tmp_path / "bundle", att_context, int8=False))
    encoder, reference = StreamingEncoder(bundle), nemo_reference(checkpoint, att_context)
    config, case = bundle.config, f"{kind} att_context {att_context[0]},{att_context[1]}"
    assert (config.chunk_frames, config.lookahead_frames) == (att_context[1] + 1, att_context[1])
    chunk = encoder.chunk_samples
    # whole chunks, long enough to slide the attention window past its left context; ragged ends
    for n, seed in ((12 * chunk, 1), (9 * chunk + 1234, 2), (chunk + 77, 3)):
        audio = make_audio(n, seed)
        ours = encoder.encode(audio)
        assert ours.shape == (encoder.frames_for(n), config.vocab_size)
        # 1. The audio as the server sees it at the end of a stream: the last chunk and its right
        #    context completed with zeros. Every frame matches.
        padded = np.pad(audio, (0, -n % chunk + config.right_context_samples))
        theirs, _ = reference(padded)
        delta = float(np.abs(ours - theirs[: len(ours)]).max())
        same = greedy_text(ours, bundle.tokenizer) == greedy_text(theirs[: len(ours)], bundle.tokenizer)
        report(case, f"{n} samples, zero-completed tail", delta, same, greedy_text(ours, bundle.tokenizer)[:30])
        assert delta <= TOLERANCE and same
        # 2. The bare audio. NeMo ends the signal at its last sample (zeros after pre-emphasis, the
        #    frame past the end blanked) and masks a last, partial chunk by its length (or drops it when
        #    it holds less than one subsampled frame); Steno's last chunk sees zeros instead. Every chunk
        #    before the one holding the end of the signal matches.
        theirs, per_chunk = reference(audio)
        kept = len(theirs) - per_chunk[-1]
        if not kept:
            continue
        delta = float(np.abs(ours[:kept] - theirs[:kept]).max())
        same = greedy_text(ours[:kept], bundle.tokenizer) == greedy_text(theirs[:kept], bundle.tokenizer)
        report(case, f"{n} samples, bare ({kept} of {len(ours)} frames)", delta, same,
               greedy_text(ours[:kept], bundle.tokenizer)[:30])
        assert delta <= TOLERANCE and same
        last = min(len(ours), len(theirs))
        report(case, "  (its last chunk, for information)", float(np.abs(ours[kept:last] - theirs[kept:last]).max()),
               greedy_text(ours, bundle.tokenizer) == greedy_text(theirs, bundle.tokenizer))


@needs_nemo
def test_streams_of_different_ages_batch_like_alone(make_checkpoint, tmp_path):
    from models.nemo_import import import_nemo

    encoder = StreamingEncoder(load_bundle(import_nemo(make_checkpoint("ctc", MULTI), tmp_path / "b", (8, 1),
                                                       int8=False)))
    chunk, right = encoder.chunk_samples, encoder.config.right_context_samples
    plan = {"a": (0, 7), "b": (2, 4), "c": (1, 2)}  # (first step, chunks)
    audio = {k: np.pad(make_audio(n * chunk, i), (0, right)) for i, (k, (_, n)) in enumerate(plan.items())}
    streams, outputs = {}, {k: [] for k in plan}
    for step in range(7):
        live = [k for k, (start, n) in plan.items() if start <= step < start + n]
        for k in live:
            streams.setdefault(k, encoder.new_stream())
        chunks = np.stack([audio[k][(step - plan[k][0]) * chunk:][:chunk + right] for k in live])
        for k, log_probs in zip(live, encoder.step([streams[k] for k in live], chunks)):
            outputs[k].append(log_probs)
    for k in plan:
        alone = encoder.encode(audio[k][:-right])
        assert np.abs(np.concatenate(outputs[k]) - alone).max() <= 1e-5, k


@needs_nemo
def test_cli_import_then_transcribe_through_the_session(make_checkpoint, tmp_path, monkeypatch):
    """`steno import-nemo` writes a bundle `steno info` accepts (int8 too); the server's session feeds
    it chunk + right context and gets exactly the frames a whole-utterance encode gives."""
    import asyncio

    import soundfile

    from streaming.cli import main
    from streaming.engine import EngineOptions
    from streaming.transcribe import transcribe_file

    out = tmp_path / "bundle"
    assert main(["import-nemo", str(make_checkpoint("hybrid", MULTI)), "-o", str(out), "--att-context", "8,0"]) == 0
    assert main(["info", str(out)]) == 0
    bundle = load_bundle(out)
    assert bundle.config.model_family == "nemo-fastconformer-ctc" and bundle.config.right_context_samples == 40
    assert (out / "encoder.int8.onnx").is_file() and bundle.tokenizer.blank_id == bundle.config.vocab_size - 1

    audio = make_audio(23456, 4)
    soundfile.write(tmp_path / "talk.wav", audio, 16000, subtype="FLOAT")
    seen = []
    step = StreamingEncoder.step

    def recording_step(self, streams, chunks):
        log_probs = step(self, streams, chunks)
        seen.append((np.array(chunks[0]), log_probs[0]))
        return log_probs

    monkeypatch.setattr(StreamingEncoder, "step", recording_step)
    events = asyncio.run(transcribe_file(EngineOptions(model=out, db=tmp_path / "notes.db", use_lm=False),
                                         tmp_path / "talk.wav"))
    assert events[-1]["type"] == "note" and not [e for e in events if e["type"] == "error"]
    fed = np.concatenate([chunk[: bundle.config.chunk_samples] for chunk, _ in seen])
    assert np.array_equal(fed[: len(audio)], audio) and not fed[len(audio):].any()
    assert all(np.array_equal(a[bundle.config.chunk_samples:], b[: bundle.config.right_context_samples])
               for (a, _), (b, _) in zip(seen, seen[1:])), "right context is not the next chunk's start"
    monkeypatch.setattr(StreamingEncoder, "step", step)
    whole = StreamingEncoder(bundle).encode(audio)
    assert np.abs(np.concatenate([lp for _, lp in seen])[: len(whole)] - whole).max() <= 1e-5


# --- the runtime's right context, without NeMo -----------------------------------------------------

def test_runtime_reads_the_right_context_from_the_next_chunk(tmp_path):
    """A toy graph whose frame k is the sum of samples [kC, kC + C + R): the runtime must hand each step
    its chunk plus the next chunk's first R samples, zeros past the end, and count steps in a cache."""
    import torch

    from models.bundle import BundleConfig, CacheConfig
    from models.tokenizer import CharTokenizer, write_tokens

    chunk, right, vocab = 4, 3, len(CharTokenizer().tokens)

    class Toy(torch.nn.Module):
        def forward(self, audio, steps):
            frame = audio.sum(dim=1, keepdim=True) + 0.0 * steps.unsqueeze(1)
            return frame.unsqueeze(2).expand(-1, 1, vocab), steps + 1

    config = BundleConfig(model_family="toy", sample_rate=16000, chunk_samples=chunk, chunk_frames=1,
                          lookahead_frames=0, left_context_frames=0, frame_duration=chunk / 16000, subsampling=1,
                          blank_id=0, vocab_size=vocab, tokenizer="characters",
                          caches=(CacheConfig("steps", "new_steps", (), "int64"),), right_context_samples=right)
    torch.onnx.export(Toy(), (torch.zeros(2, chunk + right), torch.zeros(2, dtype=torch.int64)),
                      str(tmp_path / "encoder.onnx"), dynamo=False, input_names=["audio", "steps"],
                      output_names=["log_probs", "new_steps"],
                      dynamic_axes={n: {0: "batch"} for n in ("audio", "steps", "log_probs", "new_steps")})
    (tmp_path / "config.json").write_text(config.to_json())
    write_tokens(tmp_path / "tokens.txt", CharTokenizer().tokens)
    encoder = StreamingEncoder(load_bundle(tmp_path))
    assert (encoder.chunk_samples, encoder.input_samples) == (chunk, chunk + right)
    audio = np.arange(1, 11, dtype=np.float32)          # 10 samples: 3 steps, the last one half zeros
    padded = np.pad(audio, (0, 2 + right))
    expected = [padded[k * chunk: k * chunk + chunk + right].sum() for k in range(3)]
    assert np.allclose(encoder.encode(audio)[:, 0], expected)
    stream = encoder.new_stream()
    encoder.step([stream], padded[None, :chunk + right])
    assert int(stream.caches["steps"]) == 1
    with pytest.raises(ValueError, match=rf"expected chunks of shape \(1, {chunk + right}\)"):
        encoder.step([stream], padded[None, :chunk])


# --- checkpoints Steno cannot stream -----------------------------------------------------------------

@needs_nemo
@pytest.mark.parametrize("kind, contexts, offline, message", [
    ("ctc", [[-1, -1]], True, "not a cache-aware streaming model .*chunked_limited"),
    ("rnnt", MULTI, False, "no CTC head: .* CTC or hybrid RNNT/CTC checkpoint"),
], ids=["offline", "rnnt-only"])
def test_unsupported_checkpoints_are_refused(make_checkpoint, tmp_path, kind, contexts, offline, message):
    from models.nemo_import import NemoImportError, import_nemo

    with pytest.raises(NemoImportError, match=message):
        import_nemo(make_checkpoint(kind, contexts, offline), tmp_path / "bundle")
    assert not (tmp_path / "bundle" / "config.json").exists()


@needs_nemo
def test_unknown_att_context_lists_the_trained_ones(make_checkpoint, tmp_path, capsys):
    from streaming.cli import main

    assert main(["import-nemo", str(make_checkpoint("ctc", MULTI)), "-o", str(tmp_path / "b"),
                 "--att-context", "70,13"]) == 2
    assert "choose one of 8,3, 8,1, 8,0" in capsys.readouterr().out


def test_missing_nemo_says_how_to_install(monkeypatch, tmp_path, capsys):
    from streaming.cli import main

    for name in [m for m in sys.modules if m == "nemo" or m.startswith("nemo.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "nemo", None)  # `import nemo...` now raises ImportError
    (tmp_path / "model.nemo").write_bytes(b"")
    assert main(["import-nemo", str(tmp_path / "model.nemo"), "-o", str(tmp_path / "b")]) == 2
    assert "pip install 'steno[nemo]'" in capsys.readouterr().out


logging.getLogger("nemo_logger").setLevel(logging.ERROR)
