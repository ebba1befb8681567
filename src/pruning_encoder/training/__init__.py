"""Training: the trainer, its arguments, the loss, the data collator, the YAML config and ``train``.

Needs the ``train`` extra (``pip install 'pruning-encoder[train]'``).
"""

from __future__ import annotations

from .config import ConfigError, TrainConfig, load_train_config
from .data_collator import PruningDataCollator
from .losses import PruningLoss
from .train import train
from .trainer import PruningEncoderTrainer
from .training_args import PruningEncoderTrainingArguments

__all__ = [
    "ConfigError",
    "PruningDataCollator",
    "PruningEncoderTrainer",
    "PruningEncoderTrainingArguments",
    "PruningLoss",
    "TrainConfig",
    "load_train_config",
    "train",
]
