"""Which sentences to keep: the keep-probability threshold, then an optional token budget.

A budget answers how LLM pipelines think ("at most 300 tokens of context"): among the sentences
that pass the threshold, the most probable are kept first, until the next one would not fit;
then smaller ones that still fit are taken (greedy, by keep-probability). Every sentence costs
at least one token, so none rides along for free and a budget of 0 keeps nothing. The budget
spans every document of one question, and kept sentences stay in their original order. This
module travels with saved weights (``process()`` uses it), so it imports only numpy and the
standard library.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Selection", "select_sentences"]


@dataclass(frozen=True)
class Selection:
    """The sentences kept of one document, and the tokens they take (None without a budget)."""

    keep: np.ndarray  # [sentences] bool
    kept_tokens: int | None = None


def select_sentences(
    probabilities: Sequence[np.ndarray],
    *,
    threshold: float,
    titles: Sequence[bool],
    always_select_title: bool = True,
    max_tokens: int | None = None,
    count_tokens: Callable[[int, np.ndarray], Sequence[int]] | None = None,
) -> list[Selection]:
    """Choose the kept sentences of the documents of one question.

    Args:
        probabilities: Per document, the keep-probability of each sentence (``[sentences]``).
        threshold: A sentence is a candidate when its probability exceeds this; 0 makes every
            sentence a candidate.
        titles: Per document, whether its first sentence is its title.
        always_select_title: Keep a document's title whenever another of its sentences is kept;
            under a budget, a sentence that brings its title in pays for both.
        max_tokens: The most tokens the kept sentences of all these documents may take together
            (None: no budget; 0 keeps nothing). A sentence costs its tokens, and at least one.
        count_tokens: ``(document, sentence indices) -> tokens of each`` in the model's
            tokenizer; needed with ``max_tokens``.

    Returns:
        One :class:`Selection` per document; ``kept_tokens`` is set when there is a budget.
    """
    candidates = [
        probs > threshold if threshold > 0 else np.ones(len(probs), dtype=bool)
        for probs in probabilities
    ]
    if max_tokens is None:
        return [
            Selection(_with_title(keep, is_title, always_select_title))
            for keep, is_title in zip(candidates, titles, strict=True)
        ]
    if count_tokens is None:
        raise ValueError("count_tokens is needed with max_tokens.")
    tokens = [
        _tokens_of(d, keep, is_title and always_select_title, count_tokens)
        for d, (keep, is_title) in enumerate(zip(candidates, titles, strict=True))
    ]
    keep = [np.zeros(len(probs), dtype=bool) for probs in probabilities]
    spent = [0] * len(probabilities)
    order = sorted(
        (
            (-float(probabilities[d][s]), d, int(s))
            for d, keep_d in enumerate(candidates)
            for s in np.flatnonzero(keep_d)
        )
    )
    left = max_tokens
    for _, d, s in order:
        if keep[d][s]:
            continue
        brings_title = titles[d] and always_select_title and s > 0 and not keep[d][0]
        cost = tokens[d][s] + (tokens[d][0] if brings_title else 0)
        if cost > left:
            continue
        keep[d][s] = True
        if brings_title:
            keep[d][0] = True
        spent[d] += cost
        left -= cost
    return [Selection(k, n) for k, n in zip(keep, spent, strict=True)]


def _with_title(keep: np.ndarray, is_title: bool, always_select_title: bool) -> np.ndarray:
    if is_title and always_select_title and keep[1:].any():
        keep = keep.copy()
        keep[0] = True
    return keep


def _tokens_of(
    document: int,
    candidates: np.ndarray,
    needs_title: bool,
    count_tokens: Callable[[int, np.ndarray], Sequence[int]],
) -> dict[int, int]:
    """Tokens of each candidate sentence (and of the title, which a candidate may bring in)."""
    wanted = np.flatnonzero(candidates)
    if needs_title and len(candidates) and 0 not in wanted:
        wanted = np.concatenate([[0], wanted])
    if not len(wanted):
        return {}
    # A sentence that tokenizes to nothing (zero-width characters) still costs one token: else it
    # would ride along for free, and a budget of 0 would keep it.
    counts = np.maximum(np.asarray(count_tokens(document, wanted)), 1)
    return dict(zip(wanted.tolist(), counts.tolist(), strict=True))
