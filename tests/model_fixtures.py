"""Small random-weight conformers and their exported bundles, shared by the model tests."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.conformer import ConformerCTC, ConformerConfig
from models.export import export_bundle
from models.tokenizer import CharTokenizer

CONFIGS = {
    # 4x subsampling, 4-frame chunks, 2 chunks of left context
    "sub4": ConformerConfig(d_model=64, n_layers=2, n_heads=4, ff_mult=2, conv_kernel=5,
                            subsampling_channels=16, chunk_frames=4, left_chunks=2),
    # 8x subsampling (word-piece sized frames), 2-frame chunks, 3 chunks of left context, scaled log-mels
    "sub8": ConformerConfig(d_model=48, n_layers=2, n_heads=2, ff_mult=2, conv_kernel=7,
                            subsampling=8, subsampling_channels=8, chunk_frames=2, left_chunks=3,
                            feature_mean=-10.5, feature_std=4.0),
    # ConformerConfig's default size (about 9 M parameters; the embedded model is train.py's "embedded")
    "default": ConformerConfig(),
}


def random_model(name: str, seed: int = 0) -> ConformerCTC:
    torch.manual_seed(seed)
    return ConformerCTC(CONFIGS[name]).eval()


def exported(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[ConformerCTC, Path]:
    model = random_model(name)
    path = export_bundle(model, CharTokenizer(), tmp_path_factory.mktemp(f"bundle_{name}"))
    return model, path


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def model_and_bundle(request, tmp_path_factory) -> tuple[ConformerCTC, Path]:
    return exported(tmp_path_factory, request.param)


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory) -> Path:
    return exported(tmp_path_factory, "sub4")[1]
