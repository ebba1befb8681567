"""PruningEncoder models: one encoder pass gives a ranking logit and per-token keep/prune logits.

This module travels with saved weights (``trust_remote_code=True``), so it imports only the standard
library, numpy, torch and transformers (with its own dependencies), plus its same-folder siblings.

Saved layout (weights stored once)::

    model_dir/
      config.json, pruning_encoder_config.json, *.py (this code), tokenizer files
      ranking_model/   a plain <Backbone>ForSequenceClassification  (reranking_pruning mode)
      encoder_model/   a plain <Backbone>Model                      (pruning_only mode)
      pruning_head/    config.json + model.safetensors
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
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

from .configuration_pruning_encoder import PruningEncoderConfig
from .context_pruning import ContextPruningMixin
from .precision import InferenceCopy

SOURCE_FILES = (
    "configuration_pruning_encoder.py",
    "modeling_pruning_encoder.py",
    "context_pruning.py",
    "sentence_splitter.py",
    "token_budget.py",
    "windows.py",
    "precision.py",
    "pipeline_context_pruning.py",
)
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


def save_tokenizer(tokenizer: Any, directory: Path, window: int) -> None:
    """Save ``tokenizer`` with ``model_max_length`` = the model's window (tokens), so that what
    loads it alone — ``CrossEncoder``, ``pipeline("text-classification")`` — truncates where the
    model's windows end instead of at the backbone's 512 positions."""
    tokenizer.save_pretrained(directory)
    path = directory / "tokenizer_config.json"
    settings = json.loads(path.read_text(encoding="utf-8"))
    settings["model_max_length"] = window
    path.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


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


def read_weights(file: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, on CPU.

    Raises:
        OSError: The file cannot be read or is not whole (an interrupted download); the message
            names it.
        ValueError: A weight is not floating point (see :func:`require_floating`).
    """
    try:
        weights = load_file(file)
    except (SafetensorError, OSError) as error:
        raise OSError(f"Could not read the weights {file}: {error}") from error
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

    def _loss(
        self,
        ranking_logits: torch.Tensor | None,
        pruning_logits: torch.Tensor,
        labels: torch.Tensor | None,
        pruning_labels: torch.Tensor | None,
    ) -> torch.Tensor | None:
        losses = []
        if labels is not None:
            if ranking_logits is None:
                raise ValueError(
                    "Ranking labels were given to a pruning_only model (no ranking head)."
                )
            if ranking_logits.shape[-1] == 1:
                losses.append(
                    nn.functional.binary_cross_entropy_with_logits(
                        ranking_logits.view(-1), labels.view(-1).to(ranking_logits.dtype)
                    )
                )
            else:
                losses.append(nn.functional.cross_entropy(ranking_logits, labels.view(-1).long()))
        if pruning_labels is not None:
            flat = pruning_labels.view(-1).long()
            token_loss = nn.functional.cross_entropy(
                pruning_logits.view(-1, 2).float(), flat, ignore_index=-100, reduction="sum"
            )
            losses.append(token_loss / (flat != -100).sum().clamp(min=1))
        return torch.stack(losses).sum() if losses else None

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
        here = Path(__file__).parent
        for name in SOURCE_FILES:
            source = here / name
            if not source.is_file():
                # Loaded with trust_remote_code: transformers' module cache holds only what this
                # file imports, so the rest comes from the folder the model was loaded from.
                found = cached_file(self.name_or_path, name) if self.name_or_path else None
                if found is None:
                    raise FileNotFoundError(
                        f"Cannot save: {name} is neither here nor in the "
                        f"folder the model was loaded from ({self.name_or_path})."
                    )
                source = Path(found)
            shutil.copyfile(source, directory / name)
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
            raise OSError(
                f"Could not read the weights {Path(path, backbone_dir, WEIGHTS_NAME)}: {error}"
            ) from error
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

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pruning_labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> PruningEncoderOutput:
        ranking_logits, pruning_logits = self._heads(input_ids, attention_mask, token_type_ids)
        loss = self._loss(ranking_logits, pruning_logits, labels, pruning_labels)
        return PruningEncoderOutput(
            loss=loss, ranking_logits=ranking_logits, pruning_logits=pruning_logits
        )


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

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pruning_labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> PruningEncoderSequenceClassifierOutput:
        ranking_logits, pruning_logits = self._heads(input_ids, attention_mask, token_type_ids)
        loss = self._loss(ranking_logits, pruning_logits, labels, pruning_labels)
        return PruningEncoderSequenceClassifierOutput(
            loss=loss, logits=ranking_logits, pruning_logits=pruning_logits
        )


class PruningEncoderForTokenClassification(PruningEncoderPreTrainedModel):
    """``logits`` are per-token keep/prune logits ``[batch, tokens, 2]``; labels are per token."""

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> PruningEncoderTokenClassifierOutput:
        ranking_logits, pruning_logits = self._heads(input_ids, attention_mask, token_type_ids)
        loss = self._loss(ranking_logits, pruning_logits, None, labels)
        return PruningEncoderTokenClassifierOutput(
            loss=loss, logits=pruning_logits, ranking_logits=ranking_logits
        )
