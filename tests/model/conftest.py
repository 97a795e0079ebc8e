"""Shared fixtures: tiny networks so the model tests stay fast on 2 CPU cores."""

from __future__ import annotations

import dataclasses

import keras
import pytest

from hzexp.config import ModelConfig

TINY = ModelConfig(stem_filters=(4, 4, 8), width=0.125, mag_units=(8, 8, 8, 8),
                   head_units=(8, 8, 4))


@pytest.fixture
def tiny_model():
    """Builds a seeded tiny core: `tiny_model(depth=.., cutout=.., psf_inputs=..)`."""

    def build(depth: int = 3, cutout: int = 20, **architecture) -> keras.Model:
        from hzexp.model import build_hybrid_z

        keras.utils.set_random_seed(0)
        return build_hybrid_z(dataclasses.replace(TINY, depth=depth, **architecture), cutout)

    return build
