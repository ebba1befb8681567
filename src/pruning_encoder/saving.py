"""The saved layout's names, and writing it safely: atomic folders and files, weights read back.

This module travels with saved weights (``trust_remote_code=True``), so it imports only the standard
library, torch, safetensors and transformers.

Saved layout (weights stored once)::

    model_dir/
      config.json, pruning_encoder_config.json, *.py (SOURCE_FILES), tokenizer files
      ranking_model/   a plain <Backbone>ForSequenceClassification  (reranking_pruning mode)
      encoder_model/   a plain <Backbone>Model                      (pruning_only mode)
      pruning_head/    config.json + model.safetensors
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from transformers.utils import cached_file

SOURCE_FILES = (
    "configuration_pruning_encoder.py",
    "keep_calibration.py",
    "modeling_pruning_encoder.py",
    "saving.py",
    "checks.py",
    "context_pruning.py",
    "input_shapes.py",
    "sentence_splitter.py",
    "token_budget.py",
    "windows.py",
    "precision.py",
    "pipeline_context_pruning.py",
)
"""The modules saved beside the weights: the remote code and every sibling it imports (a test
checks this list against transformers' own import resolver)."""
AUTO_MAP = {
    "AutoConfig": "configuration_pruning_encoder.PruningEncoderConfig",
    "AutoModel": "modeling_pruning_encoder.PruningEncoderModel",
    "AutoModelForSequenceClassification": (
        "modeling_pruning_encoder.PruningEncoderForSequenceClassification"
    ),
    "AutoModelForTokenClassification": (
        "modeling_pruning_encoder.PruningEncoderForTokenClassification"
    ),
}
PIPELINE_TASK = "context-pruning"
CUSTOM_PIPELINES = {
    PIPELINE_TASK: {
        "impl": "pipeline_context_pruning.ContextPruningPipeline",
        "pt": ["AutoModel"],
        "type": "text",
    }
}
"""``config.json``'s ``custom_pipelines``: ``pipeline(PIPELINE_TASK, trust_remote_code=True)``."""
PRUNING_ENCODER_CONFIG_NAME = "pruning_encoder_config.json"
PRUNING_HEAD_DIR = "pruning_head"
WEIGHTS_NAME = "model.safetensors"


def backbone_dir_name(mode: str) -> str:
    return "ranking_model" if mode == "reranking_pruning" else "encoder_model"


# Folders that only this package writes into a saved model: a save that does not write one of
# them removes the earlier one, which no longer matches the new weights.
OWN_FOLDERS = frozenset(
    {"ranking_model", "encoder_model", PRUNING_HEAD_DIR, "ranking_model_standalone", "onnx"}
)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty staging folder whose entries are moved into ``target`` if the block succeeds.

    ``target`` is created if missing. Each entry replaces the one of the same name by a rename
    (a folder as a whole), so readers see the old file or the new one, never half of one; folders
    of :data:`OWN_FOLDERS` that this save did not write are removed. Everything else in
    ``target`` — a training log, checkpoints, the user's files — is left as it is, and a failure
    inside the block leaves ``target`` untouched.

    Raises:
        NotADirectoryError: ``target`` exists and is not a folder.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"Cannot save into {target}: it is a file, not a folder.")
    # Staged beside a new target, inside an existing one: one file system, so renames hold.
    home = target if target.is_dir() else target.parent
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".saving.", dir=home))
    try:
        yield staging
        target.mkdir(exist_ok=True)  # with the umask's mode, unlike mkdtemp's 0700
        _follow_umask(staging)
        written = {entry.name for entry in staging.iterdir()}
        for name in sorted(written):
            _replace(staging / name, target / name)
        for name in OWN_FOLDERS - written:
            if (target / name).is_dir():
                shutil.rmtree(target / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (same suffix, so writers that infer the format
    from it still can); what the block writes there replaces ``target`` only if it succeeds, so
    readers see the old file or the new one, never half of one.

    Raises:
        IsADirectoryError: ``target`` is a folder.
    """
    target = Path(target)
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a folder; give a file name")
    temporary = target.with_name(f".{target.stem}.{uuid.uuid4().hex}.tmp{target.suffix}")
    try:
        yield temporary
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def save_tokenizer(tokenizer: Any, directory: Path, window: int) -> None:
    """Save ``tokenizer`` with ``model_max_length`` = the model's window (tokens), so that what
    loads it alone — ``CrossEncoder``, ``pipeline("text-classification")`` — truncates where the
    model's windows end instead of at the backbone's 512 positions."""
    tokenizer.save_pretrained(directory)
    path = directory / "tokenizer_config.json"
    settings = json.loads(path.read_text(encoding="utf-8"))
    settings["model_max_length"] = window
    path.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def copy_source_files(directory: Path, loaded_from: str | None) -> None:
    """Copy :data:`SOURCE_FILES` into ``directory``, from this folder or, for a model loaded with
    ``trust_remote_code`` (whose module cache holds only what the remote code imported), from the
    folder or repository it was loaded from.

    Raises:
        FileNotFoundError: A file is in neither place.
    """
    here = Path(__file__).parent
    for name in SOURCE_FILES:
        source = here / name
        if not source.is_file():
            found = cached_file(loaded_from, name) if loaded_from else None
            if found is None:
                raise FileNotFoundError(
                    f"Cannot save: {name} is neither here nor in the "
                    f"folder the model was loaded from ({loaded_from})."
                )
            source = Path(found)
        shutil.copyfile(source, directory / name)


def _follow_umask(folder: Path) -> None:
    """Give every file under ``folder`` the mode a new file gets (some writers use 0600)."""
    probe = folder / ".mode"
    probe.open("x").close()  # the umask applied, read back without changing it
    mode = stat.S_IMODE(probe.stat().st_mode)
    probe.unlink()
    for path in folder.rglob("*"):
        path.chmod(mode | (mode & 0o444) >> 2 if path.is_dir() else mode)


def _replace(source: Path, destination: Path) -> None:
    if not destination.is_dir():
        os.replace(source, destination)
        return
    retired = Path(tempfile.mkdtemp(prefix=".replaced.", dir=destination.parent))
    destination.rename(retired / destination.name)
    source.rename(destination)
    shutil.rmtree(retired)


def unreadable_weights(file: str | os.PathLike[str], error: Exception) -> OSError:
    """The error for a weights file that cannot be read or is not whole (an interrupted
    download), naming the file."""
    return OSError(f"Could not read the weights {file}: {error}")


def read_weights(file: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, on CPU.

    Raises:
        OSError: The file cannot be read or is not whole (:func:`unreadable_weights`).
        ValueError: A weight is not floating point (see :func:`require_floating`).
    """
    try:
        weights = load_file(file)
    except (SafetensorError, OSError) as error:
        raise unreadable_weights(file, error) from error
    require_floating(weights, str(file))
    return weights


def require_floating(weights: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights stored as integers or booleans: loading would cast them to float silently,
    and the model's scores would change. Index buffers (``position_ids``, ``token_type_ids``) are
    integers by nature and pass.

    Raises:
        ValueError: Naming ``source``, the weights and their dtype.
    """
    wrong = sorted(
        name
        for name, tensor in weights.items()
        if not tensor.is_floating_point() and not name.endswith("_ids")
    )
    if wrong:
        dtype = str(weights[wrong[0]].dtype).removeprefix("torch.")
        raise ValueError(
            f"{source} stores the weights {', '.join(wrong[:8])} as {dtype}, not floating point: "
            "refused, since casting them to float would change the model's outputs."
        )
