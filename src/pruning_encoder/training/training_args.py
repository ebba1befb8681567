"""``TrainingArguments`` with the defaults PruningEncoder training needs."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments


@dataclass
class PruningEncoderTrainingArguments(TrainingArguments):
    """Hugging Face ``TrainingArguments``, with defaults suited to PruningEncoder.

    - ``remove_unused_columns=False``: features are raw (query, text, spans) pairs that the data
      collator tokenises, not model inputs.
    - ``label_names=["pruning_labels"]``: every batch has token labels, so evaluation always
      computes the loss.
    - ``prediction_loss_only=True``: windows, not pairs, come out of the model; ranking and
      pruning metrics come from :func:`pruning_encoder.evaluation.evaluate` instead.
    - ``report_to="none"``: nothing leaves the machine unless asked.

    Adds ``head_learning_rate``: the learning rate of the ranking and pruning heads (default:
    ``learning_rate``). New heads start from random weights and, under LoRA or a small
    ``learning_rate``, learn too slowly at the backbone's rate.
    """

    head_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate of the heads (default: learning_rate)."}
    )

    remove_unused_columns: bool = False
    label_names: list[str] | None = field(default_factory=lambda: ["pruning_labels"])
    prediction_loss_only: bool = True
    report_to: str | list[str] | None = "none"
