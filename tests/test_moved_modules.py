"""Old import paths of moved modules keep working for one release, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import sys

import pytest

import pruning_encoder
from pruning_encoder.moved_modules import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_gives_the_new_module_and_warns(old: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=rf"{old} moved to {MOVED[old]}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])


def test_names_from_an_old_path_are_the_new_objects() -> None:
    sys.modules.pop("pruning_encoder.trainer", None)
    with pytest.warns(DeprecationWarning):
        from pruning_encoder.trainer import PruningEncoderTrainer
    from pruning_encoder.training import PruningEncoderTrainer as new

    assert PruningEncoderTrainer is new


def test_the_training_classes_are_exported_from_the_package() -> None:
    from pruning_encoder.training import (
        PruningEncoderTrainer,
        PruningEncoderTrainingArguments,
        PruningLoss,
    )

    assert pruning_encoder.PruningEncoderTrainer is PruningEncoderTrainer
    assert pruning_encoder.PruningEncoderTrainingArguments is PruningEncoderTrainingArguments
    assert pruning_encoder.PruningLoss is PruningLoss
    assert {"PruningEncoderTrainer", "PruningLoss"} <= set(pruning_encoder.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        pruning_encoder.Nope  # noqa: B018
