"""Training losses: token keep/drop cross-entropy plus a weighted ranking term.

Provence trains the pruning head with token cross-entropy and distils a reranker's scores into the
ranking head with MSE (weight 0.05); with binary relevance labels instead of a teacher, the
ranking term is BCE on the relevance logit.
"""

from __future__ import annotations

import torch
from torch import nn

from ..modeling_pruning_encoder import RANKING_LOSSES, pruning_loss

__all__ = ["RANKING_LOSSES", "PruningLoss"]


class PruningLoss(nn.Module):
    """``pruning_weight * token CE + ranking_weight * ranking loss`` (BCE or MSE): the model's
    own loss (:func:`~pruning_encoder.modeling_pruning_encoder.pruning_loss`) with these weights.

    Args:
        ranking_loss: ``"bce"`` on 0/1 ``labels`` (the relevance logit, as ``predict`` scores it
            with a sigmoid), or ``"mse"`` between the logit and a teacher's ``scores``.
        ranking_weight: Weight of the ranking term; 0 trains pruning alone.
        pruning_weight: Weight of the token keep/drop term.

    Targets equal to NaN are ignored (a window of a relevant text holding none of its relevant
    sentences has no ranking target); token labels of -100 are ignored.

    Raises:
        ValueError: An unknown ``ranking_loss``, or weights that are negative or both zero.
    """

    def __init__(
        self, ranking_loss: str = "bce", ranking_weight: float = 1.0, pruning_weight: float = 1.0
    ) -> None:
        super().__init__()
        if ranking_loss not in RANKING_LOSSES:
            raise ValueError(
                f"Unknown ranking_loss {ranking_loss!r}: expected one of {RANKING_LOSSES}."
            )
        if ranking_weight < 0 or pruning_weight < 0 or ranking_weight + pruning_weight == 0:
            raise ValueError("Loss weights must be non-negative and not both zero.")
        self.ranking_loss = ranking_loss
        self.ranking_weight = ranking_weight
        self.pruning_weight = pruning_weight

    @property
    def target(self) -> str:
        """The batch key the ranking term reads: ``labels`` (BCE) or ``scores`` (MSE)."""
        return "labels" if self.ranking_loss == "bce" else "scores"

    def forward(
        self,
        ranking_logits: torch.Tensor | None,
        pruning_logits: torch.Tensor,
        pruning_labels: torch.Tensor,
        ranking_targets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss of one batch: shapes and rules as :func:`pruning_loss`, the one the model's
        ``forward(labels=..., pruning_labels=...)`` computes.

        Raises:
            ValueError: A ranking term (``ranking_weight > 0``) without a ranking head or targets;
                ranking logits of more than one label.
        """
        if self.ranking_weight == 0:
            ranking_targets = None
        elif ranking_logits is None or ranking_targets is None:
            raise ValueError(
                f"ranking_weight={self.ranking_weight} needs a ranking head and "
                f"{self.target!r} in the batch."
            )
        loss = pruning_loss(
            ranking_logits,
            pruning_logits,
            pruning_labels,
            ranking_targets,
            ranking_loss=self.ranking_loss,
            ranking_weight=self.ranking_weight,
            pruning_weight=self.pruning_weight,
        )
        assert loss is not None  # the token term is always there
        return loss
