"""A Haystack ranker component that reranks documents and prunes their content."""

from __future__ import annotations

import dataclasses
from typing import Any

try:
    from haystack import Document, component, default_from_dict, default_to_dict
    from haystack.core.errors import SerializationError
except ImportError as error:
    raise ImportError(
        "PruningEncoderRanker needs haystack-ai: pip install 'pruning-encoder[haystack]'."
    ) from error

from ..bundled import DEFAULT_MODEL
from ..checks import check_batch_size, check_max_tokens, check_threshold, check_top_k
from ..pruning_encoder import PruningEncoder
from .rank_and_prune import check_model, load_model, pruning_metadata, rank_and_prune


@component
class PruningEncoderRanker:
    """Rank documents by relevance to the query and keep only their relevant sentences.

    Each returned document is a copy of its input (same id) whose ``content`` is pruned, whose
    ``score`` is the reranking score (in [0, 1]) and whose ``meta`` gains ``compression_rate``
    (percent of characters removed). Documents come back best first, at most ``top_k`` of them; a
    document pruned to nothing has no relevant sentence and is dropped. A pruning_only model only
    prunes: documents keep their input order and their retrieval scores.

    Args:
        model: A :class:`PruningEncoder`, or the name of a bundled model or the path of a saved
            one, loaded by :meth:`warm_up` (default: the bundled ``minilm-l6-wiki``). Only a name
            or path can be serialized with the pipeline.
        top_k: Return at most this many documents (None: all that keep a sentence).
        threshold, max_tokens, batch_size: The keep threshold (None: the model's), a token
            budget for all documents together (None: none) and the inputs per forward pass, as
            :func:`~pruning_encoder.integrations.rank_and_prune.rank_and_prune` reads them.

    Example:
        >>> from haystack import Document
        >>> ranker = PruningEncoderRanker(top_k=1)
        >>> docs = [Document(content="Paris is in France. Cats purr."),
        ...         Document(content="Berlin is in Germany.")]
        >>> ranker.run(query="Where is Paris?", documents=docs)["documents"][0].content
        ... # doctest: +SKIP
        'Paris is in France.'
    """

    def __init__(
        self,
        model: PruningEncoder | str = DEFAULT_MODEL,
        top_k: int | None = None,
        threshold: float | None = None,
        batch_size: int = 32,
        max_tokens: int | None = None,
    ) -> None:
        check_model(model)
        check_top_k(top_k)
        if threshold is not None:
            check_threshold(threshold)
        check_batch_size(batch_size)
        check_max_tokens(max_tokens)
        self.model = model
        self.top_k = top_k
        self.threshold = threshold
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self._encoder = model if isinstance(model, PruningEncoder) else None

    def warm_up(self) -> None:
        """Load the model named by ``model``; :meth:`run` calls this when it was not called.

        Example:
            >>> ranker = PruningEncoderRanker("path/to/saved-model")
            >>> ranker.warm_up()  # doctest: +SKIP
        """
        self._load()

    def _load(self) -> PruningEncoder:
        if self._encoder is None:
            self._encoder = load_model(self.model)
        return self._encoder

    def to_dict(self) -> dict[str, Any]:
        """Serialize the component's settings; the model must be given as a name or path.

        Example:
            >>> ranker = PruningEncoderRanker("path/to/saved-model", top_k=3, max_tokens=300)
            >>> ranker.to_dict()["init_parameters"]  # doctest: +NORMALIZE_WHITESPACE
            {'model': 'path/to/saved-model', 'top_k': 3, 'threshold': None, 'batch_size': 32,
             'max_tokens': 300}
        """
        if not isinstance(self.model, str):
            raise SerializationError(
                "PruningEncoderRanker can serialize its model only as a name or path: "
                "save the model and pass its path, e.g. PruningEncoderRanker('my-model')."
            )
        return default_to_dict(
            self,
            model=self.model,
            top_k=self.top_k,
            threshold=self.threshold,
            batch_size=self.batch_size,
            max_tokens=self.max_tokens,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PruningEncoderRanker:
        """A component from :meth:`to_dict`'s output (the model loads at :meth:`warm_up`).

        Example:
            >>> ranker = PruningEncoderRanker.from_dict(PruningEncoderRanker().to_dict())
        """
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(
        self,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        threshold: float | None = None,
        max_tokens: int | None = None,
    ) -> dict[str, list[Document]]:
        """Rank and prune ``documents`` for ``query``.

        Args:
            query: The query the documents should answer.
            documents: The documents, each with text ``content``.
            top_k: Overrides the component's ``top_k``.
            threshold: Overrides the component's ``threshold``.
            max_tokens: Overrides the component's ``max_tokens``.

        Returns:
            ``{"documents": [...]}``: the documents that keep a relevant sentence, pruned, best
            first.

        Example:
            >>> ranker.run(query="Where is Paris?", documents=docs)  # doctest: +SKIP
        """
        if any(document.content is None for document in documents):
            raise ValueError("PruningEncoderRanker needs text: some documents have no content.")
        kept = rank_and_prune(
            self._load(),
            query,
            [document.content or "" for document in documents],
            threshold=self.threshold if threshold is None else threshold,
            max_tokens=self.max_tokens if max_tokens is None else max_tokens,
            top_n=self.top_k if top_k is None else top_k,
            batch_size=self.batch_size,
            top_n_name="top_k",
        )
        ranked = []
        for position, result in kept:
            original = documents[position]
            score = result["reranking_score"]
            ranked.append(
                dataclasses.replace(
                    original,
                    content=result["pruned_context"],
                    score=original.score if score is None else score,
                    meta={**original.meta, **pruning_metadata(result)},
                )
            )
        return {"documents": ranked}
