"""The ``context-pruning`` pipeline: ``process()`` behind ``transformers.pipeline()``.

A saved model's ``config.json`` names this class under ``custom_pipelines``, so
``pipeline("context-pruning", model=path, trust_remote_code=True)`` works without this package;
importing ``pruning_encoder`` also registers the task with ``PIPELINE_REGISTRY``. This module
travels with saved weights, so it imports only the standard library and transformers, plus its
same-folder siblings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from transformers import Pipeline, PreTrainedModel, PreTrainedTokenizerBase

from .context_pruning import ContextPruningMixin, Result
from .input_shapes import is_document

PROCESS_OPTIONS = frozenset(
    {
        "threshold",
        "title",
        "always_select_title",
        "reorder",
        "top_k",
        "language",
        "sentence_splitter",
        "presplit",
        "return_sentence_probabilities",
        "max_tokens",
    }
)
"""The ``process()`` options the pipeline passes through, at creation or per call."""

Output = Result | list[Result]


class ContextPruningPipeline(Pipeline):
    """Score contexts for a question and keep only their relevant sentences, as a pipeline.

    An input is ``{"question": str, "context": str | list[str]}``; a list of inputs gives a list of
    outputs, and ``question=`` / ``context=`` keywords (one question, or aligned lists) work too.
    Each output is what ``model.process(question, context)`` returns: one result dict
    (``pruned_context``, ``reranking_score``, ``compression_rate``, ``kept_spans``) for a context
    string, a list of them for a list of contexts. The ``process()`` options ``threshold``,
    ``title`` (``"first_sentence"`` or one string for every context), ``always_select_title``,
    ``reorder``, ``top_k``, ``language``, ``sentence_splitter``, ``presplit``, ``max_tokens`` and
    ``return_sentence_probabilities`` are accepted by ``pipeline()`` and by each call;
    ``batch_size`` is the pipeline's (inputs per ``process()`` call).

    Example:
        >>> from transformers import pipeline
        >>> pruner = pipeline("context-pruning", model="path/to/model", trust_remote_code=True)
        ... # doctest: +SKIP
        >>> pruner(question="Where is the Eiffel Tower?", context="It is in Paris. Cats purr.",
        ...        threshold=0.5)["pruned_context"]  # doctest: +SKIP
        'It is in Paris.'
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase | None = None,
        **kwargs: Any,
    ) -> None:
        # Duck-typed: with remote code the model's class comes from another module than this one's.
        if not callable(getattr(model, "process", None)):
            raise TypeError(
                f"The context-pruning pipeline needs a PruningEncoder model, got {type(model)}."
            )
        super().__init__(model, **kwargs)
        # Pipeline annotates its tokenizer as the pure-Python class; process() needs a fast one.
        self.tokenizer = cast(Any, tokenizer if tokenizer is not None else self._pruner.tokenizer)
        self._pruner.tokenizer = self.tokenizer

    @property
    def _pruner(self) -> ContextPruningMixin:
        return cast(ContextPruningMixin, self.model)

    def __call__(  # type: ignore[override]
        self,
        inputs: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        *,
        question: str | Sequence[str] | None = None,
        context: Any = None,
        **kwargs: Any,
    ) -> Output | list[Output]:
        """Prune one input, or each of a list of inputs.

        Args:
            inputs: ``{"question": ..., "context": ...}`` or a list of such dicts.
            question: Instead of ``inputs``: a question, or a list of questions.
            context: With ``question``: its context(s), or one per question for a list.
            kwargs: ``process()`` options, ``batch_size`` and ``num_workers``.

        Returns:
            One output per input (a list for a list of inputs or of questions).

        Example:
            >>> pruner({"question": "Who wrote Hamlet?", "context": "Shakespeare did. It rains."})
            ... # doctest: +SKIP
        """
        if inputs is None:
            if question is None or context is None:
                raise ValueError("Give inputs, or both question= and context=.")
            if isinstance(question, str):
                inputs = {"question": question, "context": context}
            elif isinstance(context, list | tuple) and len(context) == len(question):
                inputs = [
                    {"question": q, "context": c} for q, c in zip(question, context, strict=True)
                ]
            else:
                raise ValueError(
                    "With a list of questions, give a list of contexts of that length."
                )
        elif question is not None or context is not None:
            raise ValueError("Give either inputs or question= and context=, not both.")
        unknown = set(kwargs) - PROCESS_OPTIONS - {"batch_size", "num_workers"}
        if unknown:
            raise TypeError(
                f"Unknown option(s) {sorted(unknown)}: expected {sorted(PROCESS_OPTIONS)}, "
                "batch_size or num_workers."
            )
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        if isinstance(inputs, list) and not inputs:
            return []  # as process(question, []) does
        return cast(Output | list[Output], super().__call__(inputs, **kwargs))

    def _sanitize_parameters(
        self, **kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        # pipeline() also hands over its own leftovers (local_files_only, ...): keep only ours.
        options = {key: value for key, value in kwargs.items() if key in PROCESS_OPTIONS}
        title = options.get("title")
        if title is not None and not isinstance(title, str):
            raise ValueError(
                "The pipeline's title must be 'first_sentence' or one string; for a title per "
                "document, call model.process() directly."
            )
        preprocess = {"presplit": options["presplit"]} if "presplit" in options else {}
        return preprocess, options, {}

    def preprocess(self, input_: Any, presplit: bool = False) -> dict[str, Any]:  # type: ignore[override]
        if not isinstance(input_, dict):
            raise TypeError(
                'Each input must be a dict {"question": ..., "context": ...}, '
                f"got {type(input_).__name__}."
            )
        missing = [key for key in ("question", "context") if key not in input_]
        if missing:
            raise ValueError(
                f"An input misses {' and '.join(repr(k) for k in missing)}: each input must be "
                f'{{"question": ..., "context": ...}}, got the keys {sorted(input_)}.'
            )
        question, context = input_["question"], input_["context"]
        if not isinstance(question, str):
            raise TypeError(f"question must be a string, got {type(question).__name__}.")
        single = is_document(context, presplit)
        if not single and not isinstance(context, list | tuple):
            raise TypeError(
                f"context must be a document or a list of documents, got {type(context).__name__}."
            )
        # Every input becomes one question with a list of documents, so that a batch of inputs is
        # one nested process() call whatever each input's shape.
        return {
            "question": question,
            "contexts": [context] if single else list(context),
            "single": single,
        }

    def _forward(self, model_inputs: dict[str, Any], **options: Any) -> dict[str, Any]:  # type: ignore[override]
        # With batch_size > 1 the pipeline's collate function turns each key into a list of values.
        batched = isinstance(model_inputs["question"], list)
        questions = model_inputs["question"] if batched else [model_inputs["question"]]
        contexts = model_inputs["contexts"] if batched else [model_inputs["contexts"]]
        groups = cast(list[list[Result]], self._pruner.process(questions, contexts, **options))
        # "results" first: the pipeline reads a batch's size from the first value.
        return {"results": groups if batched else groups[0], "single": model_inputs["single"]}

    def postprocess(self, model_outputs: dict[str, Any]) -> Output:  # type: ignore[override]
        results: list[Result] = model_outputs["results"]
        return results[0] if model_outputs["single"] else results
