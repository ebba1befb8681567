"""PruningEncoder models: one encoder pass gives a ranking logit and per-token keep/prune logits.

This module travels with saved weights (``trust_remote_code=True``), so it imports only the standard
library, numpy, torch and transformers (with its own dependencies), plus its same-folder siblings.

The saved layout and how it is written: :mod:`.saving`.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import nn
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.modeling_outputs import (
    ModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.utils import cached_file

from .checks import check_num_labels
from .configuration_pruning_encoder import PruningEncoderConfig
from .context_pruning import ContextPruningMixin
from .precision import InferenceCopy
from .saving import (
    AUTO_MAP,
    CUSTOM_PIPELINES,
    PIPELINE_TASK,
    PRUNING_ENCODER_CONFIG_NAME,
    PRUNING_HEAD_DIR,
    WEIGHTS_NAME,
    atomic_directory,
    backbone_dir_name,
    copy_source_files,
    read_weights,
    save_tokenizer,
    unreadable_weights,
)

__all__ = [
    "PIPELINE_TASK",
    "PruningEncoderForSequenceClassification",
    "PruningEncoderForTokenClassification",
    "PruningEncoderModel",
    "PruningEncoderPreTrainedModel",
    "load_config",
    "position_limit",
    "tag_ranking_activation",
]


def position_limit(backbone: PreTrainedModel) -> int | None:
    """The most tokens one input may take in ``backbone``: the size of its absolute position
    table (less RoBERTa's padding offset), or None where positions are relative or rotary
    (DeBERTa, ModernBERT), which have no table to run past."""
    embeddings = getattr(backbone.base_model, "embeddings", None)
    table = getattr(embeddings, "position_embeddings", None)
    if not isinstance(table, nn.Embedding):
        return None
    # RoBERTa-style embeddings number positions from padding_idx + 1.
    offset = 0 if table.padding_idx is None else table.padding_idx + 1
    return int(table.num_embeddings) - offset


def tag_ranking_activation(backbone: PreTrainedModel, activation: str) -> None:
    """Make a saved ranking model report raw logits where its PruningEncoder does
    (``ranking_activation="identity"``): ``sentence_transformers.CrossEncoder`` reads
    ``activation_fn`` from its config, and ``pipeline("text-classification")`` applies no
    function to a ``"regression"`` model. Both apply a sigmoid to one logit by default, which is
    ``"sigmoid"``'s meaning, so those models need no tag."""
    if activation == "identity":
        backbone.config.sentence_transformers = {
            "activation_fn": "torch.nn.modules.linear.Identity"
        }
        backbone.config.problem_type = "regression"


RANKING_LOSSES = ("bce", "mse")


def pruning_loss(
    ranking_logits: torch.Tensor | None,
    pruning_logits: torch.Tensor,
    pruning_labels: torch.Tensor | None,
    ranking_targets: torch.Tensor | None,
    *,
    ranking_loss: str = "bce",
    ranking_weight: float = 1.0,
    pruning_weight: float = 1.0,
) -> torch.Tensor | None:
    """The training loss: ``pruning_weight`` times the token keep/drop cross-entropy plus
    ``ranking_weight`` times the ranking loss, each term only where its targets are given (None
    where neither is). The model's ``forward(labels=..., pruning_labels=...)`` and
    ``PruningLoss`` both compute it.

    Args:
        ranking_logits: ``[batch, num_labels]``; None without a ranking head.
        pruning_logits: ``[batch, tokens, 2]``.
        pruning_labels: ``[batch, tokens]`` of 1 (keep), 0 (drop) and -100 (ignored); the term
            is the mean over the tokens not ignored (0 where all are).
        ranking_targets: ``[batch]``; NaN marks a window without a target, which is skipped (the
            training collator writes NaN for a window of a relevant text that misses its
            relevant sentences). ``"bce"`` reads them as relevance in [0, 1], ``"mse"`` as a
            teacher's logits.
        ranking_loss: ``"bce"`` or ``"mse"``.

    Raises:
        ValueError: An unknown ``ranking_loss``, ranking targets without a ranking head, or
            ranking logits of more than one label (:func:`~.checks.check_num_labels`).
    """
    if ranking_loss not in RANKING_LOSSES:
        raise ValueError(
            f"Unknown ranking_loss {ranking_loss!r}: expected one of {RANKING_LOSSES}."
        )
    terms = []
    if pruning_labels is not None:
        flat = pruning_labels.reshape(-1).long()
        token_loss = nn.functional.cross_entropy(
            pruning_logits.reshape(-1, 2).float(), flat, ignore_index=-100, reduction="sum"
        )
        terms.append(pruning_weight * token_loss / (flat != -100).sum().clamp(min=1))
    if ranking_targets is not None:
        if ranking_logits is None:
            raise ValueError("Ranking labels were given to a pruning_only model (no ranking head).")
        check_num_labels(ranking_logits.shape[-1])
        logits = ranking_logits.float()
        targets = ranking_targets.reshape(-1).to(logits.dtype)
        known = ~torch.isnan(targets)
        if not known.any():  # nothing to learn here, but keep the head in the graph
            ranking = 0.0 * logits.sum()
        else:
            ranking = (
                nn.functional.binary_cross_entropy_with_logits
                if ranking_loss == "bce"
                else nn.functional.mse_loss
            )(logits[known, 0], targets[known])
        terms.append(ranking_weight * ranking)
    return torch.stack(terms).sum() if terms else None


class PruningHead(nn.Module):
    """Per-token keep/prune classifier over the encoder's last hidden states."""

    def __init__(self, hidden_size: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, 2)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(hidden_states))


@dataclass
class PruningEncoderOutput(ModelOutput):
    """Output of :class:`PruningEncoderModel`.

    Attributes:
        loss: Ranking loss plus token pruning loss, for the labels that were given.
        ranking_logits: ``[batch, num_labels]``; None in ``pruning_only`` mode.
        pruning_logits: ``[batch, tokens, 2]``; index 1 is "keep".
    """

    loss: torch.Tensor | None = None
    ranking_logits: torch.Tensor | None = None
    pruning_logits: torch.Tensor | None = None


@dataclass
class PruningEncoderSequenceClassifierOutput(SequenceClassifierOutput):
    """A :class:`SequenceClassifierOutput` (``logits`` = ranking logits) with the pruning logits."""

    pruning_logits: torch.Tensor | None = None


@dataclass
class PruningEncoderTokenClassifierOutput(TokenClassifierOutput):
    """A :class:`TokenClassifierOutput` (``logits`` = pruning logits) with the ranking logits."""

    ranking_logits: torch.Tensor | None = None


class PruningEncoderPreTrainedModel(ContextPruningMixin, PreTrainedModel):
    """Backbone + pruning head, the spec's saved layout, and ``process()`` (from the mixin)."""

    config_class = PruningEncoderConfig
    base_model_prefix = "pruning_encoder"
    supports_gradient_checkpointing = True
    # Set (by PruningEncoder(dtype="auto")) to run inference on a reduced-precision copy of the
    # backbone while the weights stay float32; see precision.py.
    inference_copy: InferenceCopy | None = None

    def __init__(
        self, config: PruningEncoderConfig, backbone: PreTrainedModel | None = None
    ) -> None:
        super().__init__(config)
        if backbone is None:
            if config.encoder_config is None:
                raise ValueError(
                    "PruningEncoderConfig.encoder_config is required to build a model."
                )
            auto = AutoModelForSequenceClassification if config.has_ranking_head else AutoModel
            backbone = auto.from_config(config.encoder_config)
        if config.has_ranking_head:  # at creation, load and import: scoring assumes one logit
            check_num_labels(backbone.config.num_labels, config.name_or_path or None)
        limit = position_limit(backbone)
        if limit is not None and config.max_seq_length > limit:
            raise ValueError(
                f"max_seq_length={config.max_seq_length} is longer than the backbone's position "
                f"table, which holds {limit} positions ({backbone.config.model_type}): a window "
                f"of more than {limit} tokens would fail: give a window (max_length) of at most "
                f"{limit} tokens."
            )
        self.backbone = backbone
        self.pruning_head = PruningHead(config.hidden_size, config.pruning_dropout)
        nn.init.normal_(self.pruning_head.classifier.weight, std=0.02)
        nn.init.zeros_(self.pruning_head.classifier.bias)
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # The backbone initialises itself and the head is initialised in __init__; loading must not
        # re-initialise pretrained backbone weights.
        return

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer saved beside the weights, loaded on first use."""
        if self._tokenizer is None:
            if not self.name_or_path:
                raise ValueError("This model has no tokenizer: set `model.tokenizer = ...` first.")
            # That directory's code already runs (it defines this model): trusting it is moot.
            self._tokenizer = AutoTokenizer.from_pretrained(
                self.name_or_path, trust_remote_code=True
            )
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tokenizer = tokenizer

    def _heads(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        # The heads share one pass: the ranking head runs inside the backbone (which pools as its
        # architecture does), and a hook hands the pruning head its states on the way.
        backbone = self.backbone
        if self.inference_copy is not None and torch.is_inference_mode_enabled():
            backbone = self.inference_copy.of(backbone)
        base = backbone.base_model
        final_norm = getattr(base, "final_norm", None)
        captured: list[torch.Tensor] = []
        if self.config.pruning_head_input == "last_layer" and final_norm is not None:
            # What enters ModernBERT's final_norm: the states OpenProvence trains its head on
            # (hidden_states[-1] in transformers 4, which version 5 ties to last_hidden_state).
            hook = final_norm.register_forward_pre_hook(
                lambda _module, args: captured.append(args[0])
            )
        else:
            hook = base.register_forward_hook(
                lambda _module, _args, output: captured.append(output[0])
            )
        try:
            outputs = backbone(**inputs)
        finally:
            hook.remove()
        ranking_logits = outputs.logits if self.config.has_ranking_head else None
        return ranking_logits, self._prune(captured[0])

    def _prune(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # An encoder run in bf16 or fp16 (PruningEncoder(dtype=...)) hands its states to the
        # pruning head in float32, the head's own precision.
        head_dtype = next(self.pruning_head.parameters()).dtype
        return self.pruning_head(hidden_states.to(head_dtype))  # type: ignore[no-any-return]

    # PruningEncoderForTokenClassification reads ``labels`` as token labels, as transformers'
    # token classifiers do.
    labels_are_token_labels = False

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pruning_labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> ModelOutput:
        """One encoder pass through both heads, and the loss (:func:`pruning_loss` with its
        defaults) for the targets given.

        Args:
            input_ids, attention_mask, token_type_ids: ``[batch, tokens]`` pair inputs.
            labels: ``[batch]`` ranking targets (NaN: none); for
                :class:`PruningEncoderForTokenClassification`, ``[batch, tokens]`` token labels.
            pruning_labels: ``[batch, tokens]`` token labels: 1 keep, 0 drop, -100 ignored.

        Returns:
            :class:`PruningEncoderOutput`, or the sequence/token classifier output of the class.
        """
        ranking_logits, pruning_logits = self._heads(input_ids, attention_mask, token_type_ids)
        if self.labels_are_token_labels:
            labels, pruning_labels = None, labels
        loss = pruning_loss(ranking_logits, pruning_logits, pruning_labels, labels)
        return self._output(loss, ranking_logits, pruning_logits)

    def _output(
        self, loss: torch.Tensor | None, ranking: torch.Tensor | None, pruning: torch.Tensor
    ) -> ModelOutput:
        return PruningEncoderOutput(loss=loss, ranking_logits=ranking, pruning_logits=pruning)

    def save_pretrained(self, save_directory: str | os.PathLike[str], **kwargs: Any) -> None:  # type: ignore[override]
        """Save in the spec's layout, atomically (nothing is half-written on failure)."""
        if kwargs.get("push_to_hub"):
            raise ValueError("push_to_hub is not supported: upload the saved folder instead.")
        with atomic_directory(save_directory) as staging:
            self.write_layout(staging)

    def write_layout(self, directory: Path) -> None:
        """Write config, weights, code and tokenizer into an existing empty ``directory``."""
        config = self.config
        config.architectures = [
            "PruningEncoderForSequenceClassification"
            if config.has_ranking_head
            else "PruningEncoderForTokenClassification"
        ]
        config.auto_map = AUTO_MAP
        # pipeline() rewrites the loaded entries in place (class names → classes): copy them.
        config.custom_pipelines = copy.deepcopy(CUSTOM_PIPELINES)
        config.save_pretrained(directory)
        record = {
            "mode": config.mode,
            "model_name_or_path": config.base_model_name_or_path,
            "num_labels": self.backbone.config.num_labels if config.has_ranking_head else None,
            "max_length": config.max_seq_length,
            "default_threshold": config.default_threshold,
            "keep_calibration": config.keep_calibration,
            "pruning_config": {
                "hidden_size": config.hidden_size,
                "dropout": config.pruning_dropout,
            },
            "architecture": "PruningEncoder",
        }
        (directory / PRUNING_ENCODER_CONFIG_NAME).write_text(json.dumps(record, indent=2) + "\n")
        backbone_dir = directory / backbone_dir_name(config.mode)
        tag_ranking_activation(self.backbone, config.ranking_activation)
        self.backbone.save_pretrained(backbone_dir)
        head_dir = directory / PRUNING_HEAD_DIR
        head_dir.mkdir()
        head_config = {
            "hidden_size": config.hidden_size,
            "num_labels": 2,
            "dropout": config.pruning_dropout,
        }
        (head_dir / "config.json").write_text(json.dumps(head_config, indent=2) + "\n")
        head_state = {k: v.detach().contiguous() for k, v in self.pruning_head.state_dict().items()}
        save_file(head_state, head_dir / WEIGHTS_NAME, metadata={"format": "pt"})
        copy_source_files(directory, self.name_or_path)
        # A model loaded from disk loads its tokenizer lazily: saving it must not lose it.
        if self._tokenizer is not None or self.name_or_path:
            window = int(config.max_seq_length)
            save_tokenizer(self.tokenizer, directory, window)
            save_tokenizer(self.tokenizer, backbone_dir, window)

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | os.PathLike[str],
        *model_args: Any,
        config: PruningEncoderConfig | None = None,
        **kwargs: Any,
    ) -> PruningEncoderPreTrainedModel:
        """Load a model saved in the spec's layout, from a directory or a Hub repository."""
        path = str(pretrained_model_name_or_path)
        kwargs.pop("subfolder", None)
        kwargs.pop("trust_remote_code", None)
        hub_keys = (
            "cache_dir",
            "force_download",
            "local_files_only",
            "token",
            "revision",
            "proxies",
        )
        hub_kwargs = {key: kwargs[key] for key in hub_keys if key in kwargs}
        if config is None:
            config = load_config(path, **hub_kwargs)
        backbone_dir = backbone_dir_name(config.mode)
        if os.path.isdir(path):
            missing = [
                d for d in (backbone_dir, PRUNING_HEAD_DIR) if not os.path.isdir(Path(path, d))
            ]
            if missing:
                raise OSError(
                    f"{path} is not a complete PruningEncoder directory: missing {missing}."
                )
        auto = AutoModelForSequenceClassification if config.has_ranking_head else AutoModel
        try:
            backbone = auto.from_pretrained(path, *model_args, subfolder=backbone_dir, **kwargs)
        except SafetensorError as error:  # a truncated file: name it, as read_weights does
            raise unreadable_weights(Path(path, backbone_dir, WEIGHTS_NAME), error) from error
        config.encoder_config = backbone.config
        model = cls(config, backbone=backbone)
        head_file = cached_file(path, WEIGHTS_NAME, subfolder=PRUNING_HEAD_DIR, **hub_kwargs)
        if head_file is None:
            raise OSError(f"{path} has no {PRUNING_HEAD_DIR}/{WEIGHTS_NAME}.")
        state = read_weights(head_file)
        try:
            model.pruning_head.load_state_dict(state)
        except RuntimeError as error:
            raise OSError(
                f"The pruning head weights {head_file} do not fit this model: {error}"
            ) from error
        model.pruning_head.to(device=backbone.device, dtype=backbone.dtype)
        model.name_or_path = path
        model.eval()
        return model


def load_config(path: str, **hub_kwargs: Any) -> PruningEncoderConfig:
    """Read a PruningEncoder's ``config.json``; any other model type is a clear error."""
    config_dict, _ = PruningEncoderConfig.get_config_dict(path, **hub_kwargs)
    model_type = config_dict.get("model_type")
    if not config_dict:  # transformers answers a folder without config.json with nothing
        raise ValueError(f"{path} holds no config.json: it is not a saved model.")
    if model_type != PruningEncoderConfig.model_type:
        architectures = config_dict.get("architectures")
        raise ValueError(
            f"{path} holds a {model_type!r} model (architectures {architectures!r}), neither a "
            "PruningEncoder (model_type 'pruning_encoder') nor a published Provence-family "
            "checkpoint (model_type 'Provence' or 'open_provence', architectures "
            f"['XProvence']); to build a new PruningEncoder on it, use PruningEncoder({path!r})."
        )
    config = PruningEncoderConfig.from_dict(config_dict)
    config.name_or_path = path
    return config


class PruningEncoderModel(PruningEncoderPreTrainedModel):
    """Both heads in one output, ``ranking_logits`` and ``pruning_logits`` (``AutoModel``)."""


class PruningEncoderForSequenceClassification(PruningEncoderPreTrainedModel):
    """``logits`` are the ranking logits; ``pruning_logits`` ride along. Needs a ranking head."""

    def __init__(
        self, config: PruningEncoderConfig, backbone: PreTrainedModel | None = None
    ) -> None:
        if not config.has_ranking_head:
            raise ValueError(
                "A pruning_only model has no ranking head: load it with "
                "AutoModelForTokenClassification or AutoModel instead."
            )
        super().__init__(config, backbone)

    def _output(
        self, loss: torch.Tensor | None, ranking: torch.Tensor | None, pruning: torch.Tensor
    ) -> ModelOutput:
        return PruningEncoderSequenceClassifierOutput(
            loss=loss, logits=ranking, pruning_logits=pruning
        )


class PruningEncoderForTokenClassification(PruningEncoderPreTrainedModel):
    """``logits`` are per-token keep/prune logits ``[batch, tokens, 2]``; labels are per token."""

    labels_are_token_labels = True

    def _output(
        self, loss: torch.Tensor | None, ranking: torch.Tensor | None, pruning: torch.Tensor
    ) -> ModelOutput:
        return PruningEncoderTokenClassifierOutput(
            loss=loss, logits=pruning, ranking_logits=ranking
        )
