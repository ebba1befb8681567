"""``PruningEncoderTrainer``: the Hugging Face ``Trainer`` with PruningEncoder's loss and layout."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Sampler
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler

from ..data.records import Record, load_records
from ..modeling_pruning_encoder import PruningEncoderModel, PruningEncoderPreTrainedModel
from ..pruning_encoder import PruningEncoder
from .data_collator import PruningDataCollator, pair_features
from .losses import PruningLoss
from .training_args import PruningEncoderTrainingArguments

Data = str | Path | Iterable[Record] | Iterable[dict[str, Any]]


class PruningEncoderTrainer(Trainer):
    """Train a PruningEncoder (optionally wrapped by ``peft``) on records of ``dataset.py``.

    Args:
        model: A :class:`PruningEncoder`, its inner model, or a ``peft`` model wrapping one.
        args: Training arguments (default: :class:`PruningEncoderTrainingArguments`).
        train_dataset / eval_dataset: A JSONL path, records, or an iterable of record dicts
            (such as a ``datasets.Dataset``); each (query, text) pair is one training example.
        loss: The loss module (default: :class:`PruningLoss` with BCE ranking).
        data_collator: Default: :class:`PruningDataCollator` at the model's ``max_seq_length``
            and ``context_tokenization``.

    Evaluation reads the pairs longest first (by characters of question and text), so that a
    batch pads its windows little, as ``process()`` and ``CrossEncoder.predict`` sort theirs (in
    input order when ``prediction_loss_only=False`` asks for predictions);
    ``train_sampling_strategy="group_by_length"`` groups training batches by the same lengths
    (transformers' ``LengthGroupedSampler``). The evaluation loss, a mean of per-batch means,
    depends on the order only through how pairs fall into batches.

    Checkpoints hold the model in the saved PruningEncoder layout (or the ``peft`` adapter) in
    safetensors and the arguments as JSON; ``resume_from_checkpoint`` continues from them.
    """

    # compute_loss returns a per-batch mean; the Trainer scales it for gradient accumulation.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model: PruningEncoder | nn.Module,
        args: PruningEncoderTrainingArguments | None = None,
        train_dataset: Data | None = None,
        eval_dataset: Data | None = None,
        loss: PruningLoss | None = None,
        data_collator: PruningDataCollator | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(model, PruningEncoder):
            model = model._float32_model("Training")
        inner = unwrap(model)
        if args is None:
            args = PruningEncoderTrainingArguments(output_dir="pruning-encoder-output")
        if data_collator is None:
            data_collator = PruningDataCollator(
                inner.tokenizer,
                int(inner.config.max_seq_length),
                context_tokenization=inner.config.context_tokenization,
            )
        self.loss = loss or PruningLoss()
        super().__init__(
            model=model,
            args=args,
            train_dataset=_features(train_dataset),  # type: ignore[arg-type]
            eval_dataset=_features(eval_dataset),  # type: ignore[arg-type]
            data_collator=data_collator,
            **kwargs,
        )

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The Trainer's optimizer, with the heads in their own groups at ``head_learning_rate``."""
        optimizer = super().create_optimizer(model)
        head_lr = getattr(self.args, "head_learning_rate", None)
        if (
            head_lr is None
            or self.model is None
            or any(g.get("heads") for g in optimizer.param_groups)
        ):
            return optimizer
        inner = unwrap(self.model)
        backbone = {id(p) for p in inner.backbone.base_model.parameters()}
        for group in list(optimizer.param_groups):
            heads = [p for p in group["params"] if id(p) not in backbone]
            if heads:
                group["params"] = [p for p in group["params"] if id(p) in backbone]
                settings = {k: v for k, v in group.items() if k != "params"}
                optimizer.add_param_group(
                    {**settings, "params": heads, "lr": head_lr, "heads": True}
                )
        return optimizer

    def _get_train_sampler(self, train_dataset: Dataset | None = None) -> Sampler | None:
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if dataset is None or self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(train_dataset)
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return LengthGroupedSampler(batch, lengths=_pair_lengths(dataset))

    def _get_eval_sampler(self, eval_dataset: Dataset) -> Sampler | None:
        if eval_dataset is None or not self.args.prediction_loss_only:
            return super()._get_eval_sampler(eval_dataset)  # predictions come back in order
        return _LongestFirst(_pair_lengths(eval_dataset))

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        inputs = dict(inputs)
        pruning_labels = inputs.pop("pruning_labels")
        targets = {key: inputs.pop(key, None) for key in ("labels", "scores")}
        outputs = model(**inputs)
        loss = self.loss(
            outputs.ranking_logits,
            outputs.pruning_logits,
            pruning_labels,
            targets[self.loss.target],
        )
        return (loss, outputs) if return_outputs else loss

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Save the model (layout or adapter) and the arguments as JSON, never pickled."""
        output_dir = str(output_dir or self.args.output_dir)
        if not self.args.should_save:
            return
        self.accelerator.unwrap_model(self.model).save_pretrained(output_dir)
        Path(output_dir, "training_args.json").write_text(self.args.to_json_string())

    def _load_from_checkpoint(
        self, resume_from_checkpoint: str, model: nn.Module | None = None
    ) -> None:
        model = model or self.model
        if isinstance(model, PruningEncoderPreTrainedModel):
            saved = PruningEncoderModel.from_pretrained(resume_from_checkpoint)
            model.load_state_dict(saved.state_dict())
        else:
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_best_model(self) -> None:
        if self.state.best_model_checkpoint is not None:
            self._load_from_checkpoint(self.state.best_model_checkpoint)


def unwrap(model: nn.Module) -> PruningEncoderPreTrainedModel:
    """The PruningEncoder model inside ``model`` (itself, or under a ``peft`` wrapper)."""
    if isinstance(model, PruningEncoderPreTrainedModel):
        return model
    inner = getattr(getattr(model, "base_model", None), "model", None)
    if isinstance(inner, PruningEncoderPreTrainedModel):
        return inner
    raise TypeError(f"Expected a PruningEncoder model, got {type(model).__name__}.")


class _LongestFirst(Sampler[int]):
    def __init__(self, lengths: list[int]) -> None:
        self.order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


def _pair_lengths(features: Any) -> list[int]:
    """Characters of each feature's question and text: what its windows' length follows."""
    return [len(feature["query"]) + len(feature["text"]) for feature in features]


def _features(data: Data | None) -> list[dict[str, Any]] | None:
    if data is None:
        return None
    if isinstance(data, str | Path):
        return pair_features(load_records(data))
    rows = list(data)
    if rows and isinstance(rows[0], Record):
        return pair_features(rows)  # type: ignore[arg-type]
    return pair_features(load_records(rows))  # type: ignore[arg-type]
