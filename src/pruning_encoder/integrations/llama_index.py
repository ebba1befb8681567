"""A LlamaIndex node postprocessor that reranks retrieved nodes and prunes their text."""

from __future__ import annotations

from typing import Any

try:
    from llama_index.core.bridge.pydantic import Field, PrivateAttr
    from llama_index.core.callbacks import CBEventType, EventPayload
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
except ImportError as error:
    raise ImportError(
        "PruningEncoderPostprocessor needs llama-index-core: "
        "pip install 'pruning-encoder[llamaindex]'."
    ) from error

from ..bundled import DEFAULT_MODEL
from ..fields import BatchSize, MaxTokens, Threshold, TopN
from ..pruning_encoder import PruningEncoder
from .rank_and_prune import load_model, pruning_metadata, rank_and_prune


class PruningEncoderPostprocessor(BaseNodePostprocessor):
    """Rerank nodes by relevance to the query and keep only their relevant sentences.

    Each returned node is a copy of its input whose text is pruned, whose ``score`` is the
    reranking score (in [0, 1]) and whose metadata gains ``compression_rate`` (percent of
    characters removed; hidden from the LLM and the embedder). Nodes come back best first, at most
    ``top_n`` of them; a node pruned to nothing has no relevant sentence and is dropped. A
    pruning_only model only prunes: nodes keep their input order and their retrieval scores.

    Args:
        model: A :class:`PruningEncoder`, or the name of a bundled model or the path of a saved
            one, loaded when the postprocessor is made (default: the bundled ``minilm-l6-wiki``).
            Only a name or path serializes with ``to_dict()``.
        top_n: Return at most this many nodes (None: all that keep a sentence).
        threshold, max_tokens, batch_size: The keep threshold (None: the model's), a token
            budget for all documents together (None: none) and the inputs per forward pass, as
            :func:`~pruning_encoder.integrations.rank_and_prune.rank_and_prune` reads them.

    Example:
        >>> from llama_index.core.schema import NodeWithScore, TextNode
        >>> postprocessor = PruningEncoderPostprocessor(top_n=1)  # doctest: +SKIP
        >>> nodes = [NodeWithScore(node=TextNode(text="Paris is in France. Cats purr.")),
        ...          NodeWithScore(node=TextNode(text="Berlin is in Germany."))]
        >>> best = postprocessor.postprocess_nodes(nodes, query_str="Where is Paris?")
        ... # doctest: +SKIP
        >>> best[0].node.get_content()  # doctest: +SKIP
        'Paris is in France.'
    """

    model: PruningEncoder | str = Field(
        default=DEFAULT_MODEL,
        description="The PruningEncoder, or a bundled model name or saved model path.",
        repr=False,
    )
    top_n: TopN = Field(default=None, description="Return at most this many nodes.")
    threshold: Threshold = Field(default=None, description="Keep sentences scoring above this.")
    max_tokens: MaxTokens = Field(default=None, description="Keep at most this many tokens in all.")
    batch_size: BatchSize = Field(default=32, description="Inputs per forward pass.")
    _encoder: PruningEncoder = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        self._encoder = load_model(self.model)

    @classmethod
    def class_name(cls) -> str:
        return "PruningEncoderPostprocessor"

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError(
                "PruningEncoderPostprocessor needs the query: pass query_bundle or query_str."
            )
        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.MODEL_NAME: self._encoder.model.name_or_path,
                EventPayload.QUERY_STR: query_bundle.query_str,
                EventPayload.TOP_K: self.top_n,
            },
        ) as event:
            kept = rank_and_prune(
                self._encoder,
                query_bundle.query_str,
                [node.node.get_content(metadata_mode=MetadataMode.NONE) for node in nodes],
                threshold=self.threshold,
                max_tokens=self.max_tokens,
                top_n=self.top_n,
                batch_size=self.batch_size,
            )
            pruned = [_pruned(nodes[position], result) for position, result in kept]
            event.on_end(payload={EventPayload.NODES: pruned})
        return pruned


def _pruned(original: NodeWithScore, result: dict[str, Any]) -> NodeWithScore:
    """A copy of the node with its text pruned and its score set; the original is untouched."""
    added = pruning_metadata(result)
    node = original.node.model_copy(
        update={
            "metadata": {**original.node.metadata, **added},
            "excluded_llm_metadata_keys": _with_keys(
                original.node.excluded_llm_metadata_keys, added
            ),
            "excluded_embed_metadata_keys": _with_keys(
                original.node.excluded_embed_metadata_keys, added
            ),
        }
    )
    node.set_content(result["pruned_context"])
    score = result["reranking_score"]
    return NodeWithScore(node=node, score=original.score if score is None else score)


def _with_keys(keys: list[str], added: dict[str, Any]) -> list[str]:
    return [*keys, *(key for key in added if key not in keys)]
