"""Export a ConformerCTC's streaming step to an ONNX model bundle (needs torch: `steno[train]`).

The TorchScript-based exporter (`dynamo=False`) is used: it keeps the batch axis dynamic with
`dynamic_axes`, writes one self-contained file, and needs no onnxscript. Attention is written by
hand in conformer.py because this exporter freezes nn.MultiheadAttention's sequence length.
"""
from __future__ import annotations

import json
import logging
import pickle
import shutil
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from models.bundle import BundleConfig, CacheConfig
from models.conformer import ConformerCTC, ConformerConfig
from models.frontend import FrontendConfig
from models.tokenizer import Tokenizer, write_tokens

log = logging.getLogger(__name__)
OPSET = 17


class _StreamingStep(nn.Module):
    def __init__(self, model: ConformerCTC):
        super().__init__()
        self.model = model

    def forward(self, audio, *caches):
        return self.model.step(audio, *caches)


def config_from_dict(raw: dict) -> ConformerConfig:
    return ConformerConfig(**{**raw, "frontend": FrontendConfig(**raw.get("frontend", {}))})


def load_checkpoint(path: str | Path) -> tuple[ConformerCTC, dict]:
    """A training checkpoint: {"config": ConformerConfig as dict, "model": state_dict, ...}."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # e.g. numpy objects, as models.train wrote before 2026-12-06
        found = [line.split("Unsupported global: ")[-1].split(" was not")[0] for line in str(exc).splitlines()
                 if "Unsupported global" in line]
        raise ValueError(f"{path}: holds objects beyond tensors and plain data ({', '.join(found) or 'unknown'}), "
                         "which a weights-only load refuses; if you trust the file, re-save its 'config' and "
                         "'model' entries alone with torch.save and export that") from None
    if not isinstance(ckpt, dict) or not {"config", "model"} <= ckpt.keys():
        raise ValueError(f"{path}: not a training checkpoint (expected a dict with 'config' and 'model')")
    model = ConformerCTC(config_from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def bundle_config(model: ConformerCTC, tokenizer: Tokenizer) -> BundleConfig:
    cfg = model.cfg
    return BundleConfig(
        model_family="steno-conformer-ctc",
        sample_rate=cfg.frontend.sample_rate,
        chunk_samples=cfg.chunk_samples,
        chunk_frames=cfg.chunk_frames,
        lookahead_frames=cfg.chunk_frames - 1,
        left_context_frames=cfg.left_frames,
        frame_duration=cfg.samples_per_frame / cfg.frontend.sample_rate,
        subsampling=cfg.subsampling,
        blank_id=tokenizer.blank_id,
        vocab_size=len(tokenizer.tokens),
        tokenizer=tokenizer.kind,
        caches=tuple(CacheConfig(s.name, f"new_{s.name}", s.shape, s.dtype) for s in model.cache_specs()),
    )


def export_onnx(model: ConformerCTC, path: Path, config: BundleConfig, batch: int = 2) -> None:
    """Write the streaming step graph; the example batch is > 1 so no exporter pins it to 1."""
    # The exporter restores the wrapper's train/eval mode afterwards, recursively: a wrapper left
    # in training mode would switch the caller's model to training.
    step = _StreamingStep(model.eval()).eval()
    example = [torch.zeros(batch, config.chunk_samples)]
    example += [torch.zeros(batch, *c.shape, dtype=getattr(torch, c.dtype)) for c in config.caches]
    inputs = [config.audio_input] + [c.name for c in config.caches]
    outputs = [config.log_probs_output] + [c.output for c in config.caches]
    with torch.no_grad():
        torch.onnx.export(step, tuple(example), str(path), dynamo=False,
                          input_names=inputs, output_names=outputs, opset_version=OPSET,
                          dynamic_axes={name: {0: "batch"} for name in inputs + outputs})
    import onnx

    graph = onnx.load(str(path))
    meta = {"model_family": config.model_family, "sample_rate": str(config.sample_rate),
            "chunk_samples": str(config.chunk_samples), "vocab_size": str(config.vocab_size),
            "conformer_config": json.dumps(asdict(model.cfg))}
    for key, value in meta.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of the matmuls (weights int8, activations quantised on the fly).

    The front-end's matmuls (everything upstream of the log of the mel energies) stay fp32: a
    power spectrum spans ~10 decades, and one int8 scale per tensor zeroes the quiet bins, whose
    log then swings to the floor (measured on a trained model: KL 1.72 nats/frame and 57 % argmax
    agreement with them quantised, 0.0003 and >99 % without). Convolutions stay fp32 too: the
    subsampling convs are a small share of the compute and onnxruntime's ConvInteger path is
    slower than its fp32 conv on CPU.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(src), load_external_data=False).graph
    # The quantizer logs a line per tensor, and advises quant_pre_process: measured on this graph,
    # pre-processing (and per-channel scales) changed neither speed nor error, so it is skipped.
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Gemm"],
                         nodes_to_exclude=_front_end_matmuls(graph))
    finally:
        logging.disable(logging.NOTSET)


def _front_end_matmuls(graph) -> list[str]:
    """Names of the MatMul/Gemm nodes that feed the first Log (the feature extractor)."""
    producer = {out: node for node in graph.node for out in node.output}
    logs = [node for node in graph.node if node.op_type == "Log"]
    if not logs:
        return []
    seen: set[str] = set()
    stack = list(logs[0].input)
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        stack.extend(node.input)
    return [node.name for node in graph.node if node.name in seen and node.op_type in ("MatMul", "Gemm")]


def export_bundle(model: ConformerCTC, tokenizer: Tokenizer, out_dir: str | Path,
                  int8: bool = True, sentencepiece_model: Path | None = None) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = bundle_config(model, tokenizer)
    if config.vocab_size != model.cfg.vocab_size:
        raise ValueError(f"tokenizer has {config.vocab_size} tokens, model outputs {model.cfg.vocab_size}")
    export_onnx(model, out / "encoder.onnx", config)
    if int8:
        quantize_int8(out / "encoder.onnx", out / "encoder.int8.onnx")
    write_tokens(out / "tokens.txt", tokenizer.tokens)
    if sentencepiece_model is not None:
        shutil.copyfile(sentencepiece_model, out / "tokenizer.model")
    (out / "config.json").write_text(config.to_json(), encoding="utf-8")
    log.info("wrote bundle %s (%.1f M parameters)", out, sum(p.numel() for p in model.parameters()) / 1e6)
    return out
