"""What the framework integrations share: loading the model, and ranking and pruning texts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..checks import check_ranking_head, check_top_k
from ..pruning_encoder import PruningEncoder


def check_model(model: object) -> None:
    if not isinstance(model, PruningEncoder | str):
        name = type(model).__name__
        raise TypeError(f"model must be a PruningEncoder or a name or path, got {name}.")


def load_model(model: PruningEncoder | str) -> PruningEncoder:
    """``model`` itself, or the saved or bundled PruningEncoder that it names."""
    check_model(model)
    if isinstance(model, PruningEncoder):
        return model
    return PruningEncoder.from_pretrained(model)


def rank_and_prune(
    model: PruningEncoder,
    query: str,
    texts: Sequence[str],
    *,
    threshold: float | None,
    top_n: int | None,
    batch_size: int,
    max_tokens: int | None = None,
    top_n_name: str = "top_n",
) -> list[tuple[int, dict[str, Any]]]:
    """The texts to keep, as ``(input position, process() result)``: best first, at most top_n.

    A text pruned to nothing has no sentence relevant to the query and is dropped, before the
    top_n cut. A pruning_only model has no scores: texts keep their input order, and top_n (a
    cut by score) is refused, as in ``process()``.

    Args:
        model: The model.
        query: The query.
        texts: The texts to rank and prune.
        threshold: Keep a sentence when its keep-probability exceeds this (None: the model's
            default threshold).
        top_n: Return at most this many texts (None: all that keep a sentence).
        batch_size: Inputs per forward pass.
        max_tokens: A token budget over all the texts (``process(max_tokens=...)``): the kept
            sentences of all of them together take at most this many tokens of the model's
            tokenizer, the most probable first (None: no budget).
        top_n_name: What the framework calls ``top_n``, in messages.
    """
    if not isinstance(query, str):
        raise TypeError(f"query must be a string, got {type(query).__name__}.")
    check_top_k(top_n, top_n_name)
    ranking = model.config.has_ranking_head
    if top_n is not None:
        check_ranking_head(model.config, top_n_name)
    if not texts:
        return []
    results = model.process(
        query,
        list(texts),
        threshold=threshold,
        max_tokens=max_tokens,
        batch_size=batch_size,
        reorder=ranking,
    )
    kept = [
        (result.get("index", position), result)
        for position, result in enumerate(results)
        if result["pruned_context"]
    ]
    return kept[:top_n]


def pruning_metadata(result: dict[str, Any]) -> dict[str, Any]:
    """What a framework's document metadata gains from a ``process()`` result:
    ``compression_rate`` (percent of characters removed) and, under a token budget,
    ``kept_tokens``."""
    keys = ("compression_rate", "kept_tokens")
    return {key: result[key] for key in keys if key in result}
