"""A LangChain document compressor that reranks retrieved documents and prunes their text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import Document
    from langchain_core.documents.compressor import BaseDocumentCompressor
    from pydantic import ConfigDict, Field, PrivateAttr
except ImportError as error:
    raise ImportError(
        "PruningEncoderCompressor needs langchain-core: pip install 'pruning-encoder[langchain]'."
    ) from error

from ..bundled import DEFAULT_MODEL
from ..fields import BatchSize, MaxTokens, Threshold, TopN
from ..pruning_encoder import PruningEncoder
from .rank_and_prune import load_model, pruning_metadata, rank_and_prune


class PruningEncoderCompressor(BaseDocumentCompressor):
    """Rerank documents by relevance to the query and keep only their relevant sentences.

    Each returned document is a copy of its input with ``page_content`` pruned, its metadata kept,
    and ``relevance_score`` (the reranking score, in [0, 1]) and ``compression_rate`` (percent of
    characters removed; with ``max_tokens`` also ``kept_tokens``) added to the metadata.
    Documents come back best first, at most ``top_n`` of them; a document pruned to nothing has
    no relevant sentence and is dropped. A pruning_only model only prunes: documents keep their
    input order and get no ``relevance_score``.

    Args:
        model: A :class:`PruningEncoder`, or the name of a bundled model or the path of a saved
            one, loaded when the compressor is made (default: the bundled ``minilm-l6-wiki``).
        top_n: Return at most this many documents (None: all that keep a sentence).
        threshold, max_tokens, batch_size: The keep threshold (None: the model's), a token
            budget for all documents together (None: none) and the inputs per forward pass, as
            :func:`~pruning_encoder.integrations.rank_and_prune.rank_and_prune` reads them.

    Example:
        >>> from langchain_core.documents import Document
        >>> compressor = PruningEncoderCompressor(top_n=1)  # doctest: +SKIP
        >>> docs = [Document(page_content="Paris is in France. Cats purr."),
        ...         Document(page_content="Berlin is in Germany.")]
        >>> [d.page_content for d in compressor.compress_documents(docs, "Where is Paris?")]
        ... # doctest: +SKIP
        ['Paris is in France.']
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    model: PruningEncoder | str = Field(default=DEFAULT_MODEL, repr=False)
    top_n: TopN = None
    threshold: Threshold = None
    max_tokens: MaxTokens = None
    batch_size: BatchSize = 32
    _encoder: PruningEncoder = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        self._encoder = load_model(self.model)

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """The documents that keep a relevant sentence, pruned, best first, at most ``top_n``.

        Example:
            >>> best = compressor.compress_documents(docs, "Where is Paris?")  # doctest: +SKIP
            >>> best[0].metadata["relevance_score"]  # doctest: +SKIP
            0.91
        """
        kept = rank_and_prune(
            self._encoder,
            query,
            [document.page_content for document in documents],
            threshold=self.threshold,
            max_tokens=self.max_tokens,
            top_n=self.top_n,
            batch_size=self.batch_size,
        )
        compressed = []
        for position, result in kept:
            original = documents[position]
            metadata = {**original.metadata, **pruning_metadata(result)}
            if result["reranking_score"] is not None:
                metadata["relevance_score"] = result["reranking_score"]
            compressed.append(
                original.model_copy(
                    update={"page_content": result["pruned_context"], "metadata": metadata}
                )
            )
        return compressed
