"""Neural networks: the streaming conformer, its export to ONNX, and torch-free runtimes."""

from pathlib import Path

DEFAULT_BUNDLE = Path(__file__).parent / "bundles" / "default"
