"""`steno import-nemo`: a NeMo cache-aware streaming FastConformer checkpoint -> a Steno model bundle.

Needs the `nemo` extra (`pip install 'steno[nemo]'`: nemo_toolkit[asr] beside CPU torch). Supported:
CTC and hybrid RNNT/CTC models (the CTC head is exported) with a sentencepiece tokenizer, trained
for cache-aware streaming (att_context_style "chunked_limited", causal convolutions), a log-mel
preprocessor without normalisation. One look-ahead of a multi-look-ahead model is exported per bundle
(`--att-context LEFT,RIGHT`, default: the model's first).

The graph is `models.nemo_graph.NemoStreamingStep`; its streaming follows NeMo's
`CacheAwareStreamingAudioBuffer(pad_and_drop_preencoded=True)` + `conformer_stream_step` loop
exactly, chunk for chunk (tests/test_nemo_import.py holds it to that).
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from models.bundle import BundleConfig, CacheConfig
from models.tokenizer import BLANK, write_tokens

log = logging.getLogger(__name__)
OPSET = 17
MODEL_FAMILY = "nemo-fastconformer-ctc"


class NemoImportError(ValueError):
    """A checkpoint Steno cannot import, or a missing dependency; the message says what is needed."""


@dataclass(frozen=True)
class StreamingShape:
    """NeMo's streaming_cfg for one att_context_size, in the units the bundle needs."""
    att_context: tuple[int, int]
    shift_frames: int          # mel frames per chunk (after the first, padded one: all chunks alike)
    pre_encode_frames: int     # mel frames of pre-encode cache in front of each chunk
    drop_pre_encoded: int      # subsampled frames of that cache dropped after the pre-encoder, every step
    out_frames: int            # encoder frames per chunk
    subsampling: int
    cache_channel: int         # attention cache length (left context, in encoder frames)
    cache_time: int            # convolution cache length
    n_layers: int
    d_model: int


def require_nemo():
    """Import NeMo's ASR collection, or say how to get it."""
    try:
        import nemo.collections.asr as nemo_asr
    except ImportError as exc:
        raise NemoImportError(f"importing a NeMo checkpoint needs NeMo ({exc}); install the extra: "
                              "pip install 'steno[nemo]'") from None
    return nemo_asr


def load_checkpoint(path: str | Path):
    """Restore a .nemo file on the CPU, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise NemoImportError(f"{path}: no such file")
    nemo_asr = require_nemo()
    logging.getLogger("nemo_logger").setLevel(logging.ERROR)
    try:
        model = nemo_asr.models.ASRModel.restore_from(str(path), map_location="cpu")
    except Exception as exc:  # NeMo raises many kinds (hydra, omegaconf, tar, torch)
        raise NemoImportError(f"{path}: NeMo cannot restore it as an ASR model ({type(exc).__name__}: {exc})") from None
    return model.eval()


def ctc_head(model):
    """The CTC decoder of a CTC or hybrid RNNT/CTC model; RNNT-only models are refused."""
    if hasattr(model, "ctc_decoder"):
        model.change_decoding_strategy(decoder_type="ctc", verbose=False)
        return model.ctc_decoder
    from nemo.collections.asr.models import EncDecCTCModel

    if isinstance(model, EncDecCTCModel):
        return model.decoder
    raise NemoImportError(f"{type(model).__name__} has no CTC head: Steno decodes CTC posteriors, so it needs a "
                          "CTC or hybrid RNNT/CTC checkpoint (e.g. stt_en_fastconformer_hybrid_large_streaming_multi); "
                          "RNNT-only models are not supported")


def check_encoder(model) -> None:
    from nemo.collections.asr.parts.mixins.streaming import StreamingEncoder

    encoder = model.encoder
    name = type(encoder).__name__
    if not isinstance(encoder, StreamingEncoder) or not hasattr(encoder, "att_context_style"):
        raise NemoImportError(f"encoder {name} is not a cache-aware streaming encoder: Steno needs a "
                              "(Fast)Conformer trained for cache-aware streaming")
    offline = all(c[0] < 0 and c[1] < 0 for c in encoder.att_context_size_all)
    if offline or encoder.att_context_style != "chunked_limited":
        raise NemoImportError(
            f"this checkpoint is not a cache-aware streaming model (att_context_style "
            f"{encoder.att_context_style!r}, att_context_size {encoder.att_context_size_all}): Steno needs one "
            "trained with att_context_style 'chunked_limited' and a finite left context, e.g. NVIDIA's "
            "stt_en_fastconformer_hybrid_large_streaming_* checkpoints")
    if list(encoder.conv_context_size) != [encoder.conv_context_size[0], 0]:
        raise NemoImportError(f"convolutions look ahead (conv_context_size {encoder.conv_context_size}): "
                              "cache-aware streaming needs conv_context_size 'causal'")


def check_featurizer(model) -> None:
    preprocessor = getattr(model, "preprocessor", None)
    featurizer = getattr(preprocessor, "featurizer", None)
    if featurizer is None or not hasattr(featurizer, "fb"):
        raise NemoImportError(f"preprocessor {type(preprocessor).__name__} is not a log-mel filterbank "
                              "(AudioToMelSpectrogramPreprocessor)")
    problems = []
    if featurizer.normalize not in (None, "", "NA", "None", "none"):
        problems.append(f"normalize={featurizer.normalize!r} needs the whole utterance (streaming models use 'NA')")
    if featurizer.frame_splicing != 1:
        problems.append(f"frame_splicing={featurizer.frame_splicing} (must be 1)")
    if not featurizer.log:
        problems.append("log=False (must be True)")
    if featurizer.window is None:
        problems.append("window='none' (a window function is needed)")
    if problems:
        raise NemoImportError("unsupported preprocessor: " + "; ".join(problems))


def check_tokenizer(model) -> bytes:
    """The serialized sentencepiece model behind the checkpoint's tokenizer."""
    inner = getattr(getattr(model, "tokenizer", None), "tokenizer", None)
    if inner is None or not hasattr(inner, "serialized_model_proto"):
        raise NemoImportError("the checkpoint's tokenizer is not a sentencepiece model (character and aggregate "
                              "tokenizers are not supported): Steno needs a BPE/unigram sentencepiece checkpoint")
    return inner.serialized_model_proto()


def select_att_context(model, att_context: tuple[int, int] | None) -> tuple[int, int]:
    encoder = model.encoder
    available = [tuple(c) for c in encoder.att_context_size_all]
    chosen = tuple(att_context) if att_context is not None else available[0]
    if chosen not in available:
        raise NemoImportError(f"--att-context {chosen[0]},{chosen[1]} is not one this model was trained with: "
                              f"choose one of {', '.join(f'{a},{b}' for a, b in available)}")
    if chosen[0] < 0:
        raise NemoImportError(f"att_context {chosen} has an unlimited left context, which no fixed-size cache holds")
    encoder.set_default_att_context_size(list(chosen))
    return chosen


def later_chunks(value):
    """NeMo gives some sizes as [first chunk, later chunks]; padded like the others, the first is a later one."""
    return value[1] if isinstance(value, (list, tuple)) else value


def streaming_shape(model, att_context: tuple[int, int]) -> StreamingShape:
    encoder = model.encoder
    cfg = encoder.streaming_cfg
    shift, pre_encode = later_chunks(cfg.shift_size), later_chunks(cfg.pre_encode_cache_size)
    if shift % encoder.subsampling_factor:
        raise NemoImportError(f"chunks of {shift} mel frames are not a whole number of {encoder.subsampling_factor}x "
                              "subsampled frames")
    return StreamingShape(att_context=att_context, shift_frames=shift, pre_encode_frames=pre_encode,
                          drop_pre_encoded=cfg.drop_extra_pre_encoded,
                          out_frames=cfg.valid_out_len, subsampling=encoder.subsampling_factor,
                          cache_channel=cfg.last_channel_cache_size, cache_time=encoder.conv_context_size[0],
                          n_layers=len(encoder.layers), d_model=encoder.d_model)


def prepare(model, att_context: tuple[int, int] | None = None) -> StreamingShape:
    """Check the checkpoint and put the model in cache-aware export mode for one look-ahead."""
    check_encoder(model)
    check_featurizer(model)
    ctc_head(model)
    chosen = select_att_context(model, att_context)
    model.set_export_config({"cache_support": True, **({"decoder_type": "ctc"} if hasattr(model, "ctc_decoder") else {})})
    shape = streaming_shape(model, chosen)
    if shape.out_frames * shape.subsampling != shape.shift_frames:
        raise NemoImportError(f"chunks of {shape.shift_frames} mel frames give {shape.out_frames} encoder frames at "
                              f"{shape.subsampling}x subsampling: unsupported streaming shape")
    return shape


def cache_configs(shape: StreamingShape, audio_context: int, n_mels: int) -> tuple[CacheConfig, ...]:
    return (
        CacheConfig("cache_audio", "new_cache_audio", (audio_context,)),
        CacheConfig("cache_mel", "new_cache_mel", (n_mels, shape.pre_encode_frames)),
        CacheConfig("cache_last_channel", "new_cache_last_channel", (shape.n_layers, shape.cache_channel, shape.d_model)),
        CacheConfig("cache_last_time", "new_cache_last_time", (shape.n_layers, shape.d_model, shape.cache_time)),
        CacheConfig("cache_last_channel_len", "new_cache_last_channel_len", (), "int64"),
    )


def bundle_config(step, shape: StreamingShape, vocab_size: int) -> BundleConfig:
    spec = step.logmel.spec
    return BundleConfig(
        model_family=MODEL_FAMILY,
        sample_rate=spec.sample_rate,
        chunk_samples=shape.shift_frames * spec.hop_length,
        chunk_frames=shape.out_frames,
        lookahead_frames=shape.att_context[1],
        left_context_frames=shape.att_context[0],
        frame_duration=shape.subsampling * spec.hop_length / spec.sample_rate,
        subsampling=shape.subsampling,
        blank_id=vocab_size - 1,
        vocab_size=vocab_size,
        tokenizer="sentencepiece",
        caches=cache_configs(shape, spec.context_samples, step.logmel.fb.shape[0]),
        right_context_samples=spec.right_context_samples(shape.shift_frames),
    )


def export_onnx(step, config: BundleConfig, path: Path, metadata: dict[str, str], batch: int = 2) -> None:
    import onnx
    import torch
    from nemo.core.classes.common import typecheck
    from nemo.core.classes.exportable import Exportable

    for module in step.model.modules():  # NeMo's own export preparation (masked convs off, etc.)
        if isinstance(module, Exportable):
            module._prepare_for_export(noreplace=True)
    example = [torch.zeros(batch, config.input_samples)]
    example += [torch.full((batch, *c.shape), c.init, dtype=getattr(torch, c.dtype)) for c in config.caches]
    inputs = [config.audio_input] + [c.name for c in config.caches]
    outputs = [config.log_probs_output] + [c.output for c in config.caches]
    typecheck.set_typecheck_enabled(enabled=False)
    try:
        with torch.no_grad():
            torch.onnx.export(step.eval(), tuple(example), str(path), dynamo=False, input_names=inputs,
                              output_names=outputs, opset_version=OPSET,
                              dynamic_axes={name: {0: "batch"} for name in inputs + outputs})
    finally:
        typecheck.set_typecheck_enabled(enabled=True)
    graph = onnx.load(str(path))
    meta = {"model_family": config.model_family, "sample_rate": str(config.sample_rate),
            "chunk_samples": str(config.chunk_samples), "vocab_size": str(config.vocab_size), **metadata}
    for key, value in meta.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))


def import_nemo(checkpoint: str | Path, out_dir: str | Path, att_context: tuple[int, int] | None = None,
                int8: bool = True) -> Path:
    """Write a bundle for `checkpoint` (a .nemo file) at one look-ahead; returns the bundle path."""
    from models.bundle import load_bundle
    from models.export import quantize_int8
    from models.nemo_graph import NemoStreamingStep
    from models.runtime import StreamingEncoder
    from models.tokenizer import SentencePieceTokenizer

    model = load_checkpoint(checkpoint)
    shape = prepare(model, att_context)
    sp_model = check_tokenizer(model)
    step = NemoStreamingStep(model, shape.shift_frames, shape.pre_encode_frames).eval()
    head = model.ctc_decoder if hasattr(model, "ctc_decoder") else model.decoder
    vocab_size = int(head.num_classes_with_blank)
    config = bundle_config(step, shape, vocab_size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:  # a failed export leaves no half-written bundle
        staged = Path(tmp)
        (staged / "tokenizer.model").write_bytes(sp_model)
        tokenizer = SentencePieceTokenizer(staged / "tokenizer.model")
        if len(tokenizer.tokens) != vocab_size or tokenizer.tokens[-1] != BLANK:
            raise NemoImportError(f"the tokenizer has {len(tokenizer.tokens) - 1} pieces but the CTC head outputs "
                                  f"{vocab_size} classes (pieces + blank expected)")
        metadata = {"nemo_checkpoint": Path(checkpoint).name, "nemo_class": type(model).__name__,
                    "att_context_size": json.dumps(list(shape.att_context)),
                    "nemo_streaming": json.dumps({"shift_mel_frames": shape.shift_frames,
                                                  "pre_encode_cache_mel_frames": shape.pre_encode_frames,
                                                  "drop_extra_pre_encoded": shape.drop_pre_encoded,
                                                  "valid_out_len": shape.out_frames})}
        export_onnx(step, config, staged / "encoder.onnx", metadata)
        if int8:
            quantize_int8(staged / "encoder.onnx", staged / "encoder.int8.onnx")
        write_tokens(staged / "tokens.txt", tokenizer.tokens)
        (staged / "config.json").write_text(config.to_json(), encoding="utf-8")
        for name in ("encoder.onnx", "encoder.int8.onnx", "tokens.txt", "tokenizer.model", "config.json"):
            if (staged / name).exists():
                shutil.copyfile(staged / name, out / name)
    StreamingEncoder(load_bundle(out), threads=1)  # the runtime accepts it: files, config and graph agree
    log.info("wrote bundle %s from %s (att_context %s, %d ms chunks)", out, checkpoint, list(shape.att_context),
             1000 * config.chunk_samples // config.sample_rate)
    return out
