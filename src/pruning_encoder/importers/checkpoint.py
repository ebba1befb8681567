"""What every importer shares: reading a published checkpoint's files without running its code,
and building our model from what an importer made of them.

A checkpoint is read through three files only: ``config.json`` (as JSON), the tokenizer files
(through the transformers class they name, never the checkpoint's own) and the weights
(safetensors; a pickled ``pytorch_model.bin`` only on request, with
``torch.load(weights_only=True)``). Its ``modeling_*.py`` is never imported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch
from huggingface_hub import ModelCard
from transformers import (
    AutoModelForSequenceClassification,
    PreTrainedConfig,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)
from transformers.models.auto.tokenization_auto import tokenizer_class_from_name
from transformers.utils import cached_file

from ..configuration_pruning_encoder import PruningEncoderConfig
from ..modeling_pruning_encoder import PruningEncoderModel
from ..pair_template import add_pair_template
from ..saving import read_weights, require_floating

Weights = dict[str, torch.Tensor]
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_BIN = "pytorch_model.bin"
HUB_KEYS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "proxies")


class ImportFormatError(ValueError):
    """A checkpoint that no importer reads, or that lacks what its format requires."""


@dataclass
class Checkpoint:
    """A published checkpoint: a local folder or a Hub id, and its ``config.json``."""

    path: str
    config: dict[str, Any]
    hub_kwargs: dict[str, Any] = field(default_factory=dict)
    _tokenizer: PreTrainedTokenizerBase | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str, **hub_kwargs: Any) -> Checkpoint | None:
        """The checkpoint at ``path``, or None where it has no ``config.json``."""
        hub = {key: value for key, value in hub_kwargs.items() if key in HUB_KEYS}
        try:
            found = cached_file(path, "config.json", **hub)
        except OSError:
            return None
        if found is None:
            return None
        with open(found, encoding="utf-8") as handle:
            config = json.load(handle)
        if not isinstance(config, dict):
            raise ImportFormatError(f"{path}/config.json is not a JSON object.")
        return cls(path, config, hub)

    def _file(self, name: str) -> str | None:
        return cached_file(  # type: ignore[no-any-return]
            self.path, name, _raise_exceptions_for_missing_entries=False, **self.hub_kwargs
        )

    def weights(self, *, allow_pytorch_bin: bool = False) -> Weights:
        """All tensors of the checkpoint (one safetensors file, sharded ones, or on request a
        ``pytorch_model.bin``), on CPU.

        Raises:
            ImportFormatError: Only a ``pytorch_model.bin`` is there and ``allow_pytorch_bin`` is
                False (unpickling can run code), or there are no weights at all.
            OSError: A weights file cannot be read or is truncated (named).
            ValueError: A weight is stored as an integer, not floating point (named).
        """
        single = self._file(SAFETENSORS)
        if single is not None:
            return read_weights(single)
        index = self._file(SAFETENSORS_INDEX)
        if index is not None:
            with open(index, encoding="utf-8") as handle:
                shards = sorted(set(json.load(handle)["weight_map"].values()))
            weights: Weights = {}
            for shard in shards:
                found = self._file(shard)
                if found is None:
                    raise ImportFormatError(f"{self.path} lacks the weight shard {shard}.")
                weights.update(read_weights(found))
            return weights
        pickled = self._file(PYTORCH_BIN)
        if pickled is None:
            raise ImportFormatError(
                f"{self.path} has no weights: neither {SAFETENSORS}, {SAFETENSORS_INDEX} nor "
                f"{PYTORCH_BIN}."
            )
        if not allow_pytorch_bin:
            raise ImportFormatError(
                f"{self.path} holds its weights only as {PYTORCH_BIN}, a pickle, which can run "
                "code when loaded: it is refused. Convert it to safetensors, or opt in with "
                "allow_pytorch_bin=True (--allow-pytorch-bin) to read it with "
                "torch.load(weights_only=True), which loads tensors only."
            )
        loaded = torch.load(pickled, map_location="cpu", weights_only=True)
        weights = {key: value for key, value in loaded.items() if isinstance(value, torch.Tensor)}
        require_floating(weights, pickled)
        return weights

    def license(self) -> str | None:
        """The licence its model card (``README.md``) declares, if any."""
        card = self._file("README.md")
        if card is None:
            return None
        license_ = ModelCard.load(card).data.license
        return str(license_) if license_ else None

    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The checkpoint's own tokenizer (fast, for offsets), with its code never run; loaded
        once.

        The class comes from ``tokenizer_config.json``'s ``tokenizer_class`` (a transformers
        class), else a bare ``tokenizer.json`` is read: ``AutoTokenizer`` would consult
        ``config.json``, whose ``auto_map`` points at the checkpoint's code.
        """
        if self._tokenizer is not None:
            return self._tokenizer
        settings_file = self._file("tokenizer_config.json")
        name = None
        if settings_file is not None:
            with open(settings_file, encoding="utf-8") as handle:
                name = json.load(handle).get("tokenizer_class")
        known = tokenizer_class_from_name(name) if isinstance(name, str) else None
        if known is None and self._file("tokenizer.json") is None:
            raise ImportFormatError(
                f"{self.path} has neither a tokenizer.json nor a transformers tokenizer_class "
                f"in tokenizer_config.json (found {name!r})."
            )
        cls = known or PreTrainedTokenizerFast
        tokenizer = cls.from_pretrained(self.path, **self.hub_kwargs)
        if not tokenizer.is_fast:
            raise ImportFormatError(
                f"{self.path} has no fast tokenizer (tokenizer.json): PruningEncoder needs "
                "offset mappings."
            )
        self._tokenizer = tokenizer
        return tokenizer


@dataclass
class Conversion:
    """A checkpoint in our terms: a ``<Backbone>ForSequenceClassification`` and a pruning head.

    Attributes:
        family: The format's name, for messages and the model card.
        encoder_config: The backbone's config (``num_labels`` = the ranking logits).
        backbone: The backbone's state dict, keyed as ``AutoModelForSequenceClassification``.
        pruning_head: The keep/prune classifier's ``weight`` ``[2, hidden]`` and ``bias`` ``[2]``.
        settings: ``PruningEncoderConfig`` keys (threshold, window, score activation, ...).
    """

    family: str
    encoder_config: PreTrainedConfig
    backbone: Weights
    pruning_head: Weights
    settings: dict[str, Any]


def take(weights: Weights, prefix: str) -> Weights:
    """The tensors under ``prefix``, with the prefix removed from their names."""
    return {key[len(prefix) :]: value for key, value in weights.items() if key.startswith(prefix)}


def require(weights: Weights, names: list[str], family: str, path: str) -> None:
    """Raise, naming them, if any of ``names`` is missing from ``weights``."""
    missing = [name for name in names if name not in weights]
    if missing:
        raise ImportFormatError(
            f"{path} looks like a {family} checkpoint but lacks the weights {', '.join(missing)}."
        )


def assemble(conversion: Conversion, checkpoint: Checkpoint) -> PruningEncoderModel:
    """Our model from a conversion: every backbone weight must fit, none may be left over.

    Raises:
        ImportFormatError: Weights are missing, left over or of the wrong shape.
    """
    path = checkpoint.path
    tokenizer = checkpoint.tokenizer()
    backbone = AutoModelForSequenceClassification.from_config(conversion.encoder_config)
    # Older checkpoints store the position-id buffers, which recent models recompute.
    state = {k: v for k, v in conversion.backbone.items() if not k.endswith("position_ids")}
    try:
        missing, unexpected = backbone.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise ImportFormatError(
            f"The {conversion.family} weights of {path} do not fit its config: {error}"
        ) from error
    if missing or unexpected:
        raise ImportFormatError(
            f"The {conversion.family} weights of {path} do not match a "
            f"{type(backbone).__name__}: missing {sorted(missing)[:8]}, "
            f"unexpected {sorted(unexpected)[:8]}."
        )
    add_pair_template(tokenizer)
    config = PruningEncoderConfig(
        mode="reranking_pruning",
        encoder_config=backbone.config,
        base_model_name_or_path=path,
        imported_from={
            "family": conversion.family,
            "source": path,
            "license": checkpoint.license(),
        },
        **conversion.settings,
    )
    model = PruningEncoderModel(config, backbone=backbone)
    try:
        model.pruning_head.classifier.load_state_dict(conversion.pruning_head)
    except RuntimeError as error:
        raise ImportFormatError(
            f"The {conversion.family} pruning head of {path} does not fit: {error}"
        ) from error
    # Set now, so that nothing loads the checkpoint's tokenizer again with trust_remote_code.
    model.tokenizer = tokenizer
    model.eval()
    return model
