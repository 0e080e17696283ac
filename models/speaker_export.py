"""Export resemblyzer's GE2E speaker encoder to the ONNX file the server uses (needs torch).

    python -m models.speaker_export [-o models/speaker_ge2e.onnx] [--fp32]

Resemblyzer (Apache-2.0, https://github.com/resemble-ai/Resemblyzer) ships trained weights,
`pretrained.pt`, in its PyPI wheel: a 3-layer LSTM (hidden 256) over 40-band mel frames, then a
linear layer, ReLU and L2 norm -> a 256-d embedding per 1.6 s "partial". The graph exported here
is exactly that network: `mels` [batch, frames, 40] -> `embedding` [batch, 256]. The mel
front-end runs in numpy (`models.speaker.mel_frames`, tested against resemblyzer's librosa one).

By default the weights are stored as float16 (2.9 MB instead of 5.7 MB; computation stays float32
through Cast nodes). The export is run once and the file is committed, so the serving path needs
neither torch nor resemblyzer. resemblyzer comes with the `train` extra; its package imports
webrtcvad (for silence trimming, which we do not use), whose PyPI release needs pkg_resources
(setuptools<81): `import_resemblyzer` puts a stub in its place when that import fails.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from models.speaker import DEFAULT_MODEL, N_MELS


def import_resemblyzer():
    """The resemblyzer package, with a stub webrtcvad if the real one cannot be imported."""
    import sys
    import types
    try:
        import webrtcvad  # noqa: F401
    except ImportError:
        sys.modules["webrtcvad"] = types.ModuleType("webrtcvad")
    import resemblyzer
    return resemblyzer


def export(out: Path, fp16: bool = True) -> Path:
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper

    encoder = import_resemblyzer().VoiceEncoder("cpu", verbose=False).eval()

    class Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder

        def forward(self, mels):
            _, (hidden, _) = self.encoder.lstm(mels)
            raw = self.encoder.relu(self.encoder.linear(hidden[-1]))
            return raw / torch.linalg.vector_norm(raw, dim=1, keepdim=True).clamp_min(1e-12)

    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(2, 160, N_MELS).abs()
    torch.onnx.export(Graph().eval(), (example,), str(out), input_names=["mels"],
                      output_names=["embedding"], opset_version=17, dynamo=False,
                      dynamic_axes={"mels": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}})
    model = onnx.load(str(out))
    if fp16:
        graph = model.graph
        casts, kept = [], []
        for init in graph.initializer:
            array = numpy_helper.to_array(init)
            if array.dtype != np.float32 or array.size < 1024:
                kept.append(init)
                continue
            half = numpy_helper.from_array(array.astype(np.float16), init.name + "_fp16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
        del graph.initializer[:]
        graph.initializer.extend(kept)
        nodes = list(graph.node)
        del graph.node[:]
        graph.node.extend(casts + nodes)
    model.producer_name = "steno.models.speaker_export"
    for key, value in {"source": "resemblyzer 0.1.4 pretrained.pt (GE2E, Apache-2.0)",
                       "sample_rate": "16000", "n_mels": str(N_MELS), "embedding_size": "256",
                       "weights": "float16" if fp16 else "float32"}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--fp32", action="store_true", help="keep float32 weights")
    args = parser.parse_args(argv)
    path = export(args.out, fp16=not args.fp32)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
