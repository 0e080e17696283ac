"""Neural networks: the streaming conformer, its export to ONNX, and torch-free runtimes."""
