"""``process()``: score and prune contexts for a question, Provence-style, in one forward pass.

The data path: inputs → documents → sentence spans (char offsets into the original text) → one
tokenizer call per chunk (questions and contexts apart, offsets on) → windows of whole sentences
that fit ``max_length``, each with the question → model → mean keep-probability per sentence →
threshold → kept spans. This module travels with saved weights, so it imports only the standard
library, numpy, torch and transformers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase
from transformers.utils.logging import tqdm

from .checks import (
    check_batch_size,
    check_max_tokens,
    check_num_labels,
    check_ranking_head,
    check_threshold,
    check_top_k,
)
from .input_shapes import group_inputs, join_sentences, shaped_like_input
from .keep_calibration import apply_keep_calibration
from .sentence_splitter import Span, resolve_spans, split_sentences
from .token_budget import Selection, select_sentences
from .windows import (
    PASS_OVERHEAD_TOKENS,
    Template,
    build_windows,
    collate,
    question_limit,
    token_batches,
    window_length,
)

Result = dict[str, Any]
RESULT_FIELDS = ("pruned_context", "reranking_score", "compression_rate", "kept_spans")
"""The fields of every result; see :func:`result_record`."""
SENTENCE_FIELDS = ("sentence_spans", "sentence_probabilities")
"""The fields ``return_sentence_probabilities`` adds."""
# How many batches' worth of documents score_documents sorts by length together.
LOOKAHEAD_BATCHES = 16


@dataclass
class Document:
    """One (question, context) job: its text, its sentence spans and an optional title."""

    question: str
    text: str
    spans: list[Span]
    title: str | None = None
    first_sentence_is_title: bool = False


class ContextPruningMixin:
    """Adds ``process()`` and ``score_documents()`` to a PruningEncoder model."""

    config: Any
    tokenizer: PreTrainedTokenizerBase

    @property
    def question_token_limit(self) -> int:
        """The most tokens a question (with its title) may take; a longer one raises ValueError
        in ``process()``, since too little of each ``max_seq_length`` window would remain."""
        return question_limit(int(self.config.max_seq_length), Template.of(self.tokenizer))

    def process(
        self,
        question: str | Sequence[str],
        context: str | Sequence[Any],
        *,
        threshold: float | None = None,
        batch_size: int = 32,
        title: str | Sequence[Any] | None = None,
        always_select_title: bool = True,
        reorder: bool = False,
        top_k: int | None = None,
        language: str = "auto",
        sentence_splitter: Callable[[str], Sequence[Any]] | None = None,
        presplit: bool = False,
        return_sentence_probabilities: bool = False,
        show_progress_bar: bool | None = None,
        max_tokens: int | None = None,
    ) -> Result | list[Result] | list[list[Result]]:
        """Score each context for the question and keep only its relevant sentences.

        Input shapes (as in Provence): ``str`` + ``str`` → one result; ``str`` + list → one result
        per document; list + list → aligned pairs; list + list of lists → several documents per
        question. With ``presplit=True`` each document is a list of sentences instead of a string.

        Args:
            question: A question, or one per context (group).
            context: Document(s) as described above.
            threshold: Keep a sentence when its keep-probability exceeds this (0 keeps every
                sentence, 1 none); defaults to the model's ``config.default_threshold``.
            batch_size: Full-length windows per forward pass: a pass reads at most
                ``batch_size * max_seq_length`` padded tokens, so it takes more shorter windows.
            title: ``"first_sentence"`` (each context's first sentence is its title), title
                string(s) shaped like ``context`` (shown to the model before each window, never
                part of the output), or None.
            always_select_title: With ``title="first_sentence"``, keep the title sentence whenever
                another sentence of its context is kept.
            reorder: Sort each question's documents by reranking score, best first (each result
                then carries its input position as ``"index"``).
            top_k: Keep only the ``top_k`` best-scored documents of each question.
            language: ``"auto"``, ``"en"``, ``"ja"`` or ``"zh"`` for the built-in splitter.
            sentence_splitter: A callable text → sentences (strings or ``(start, end)`` spans).
            presplit: Documents are given as lists of sentences (joined by one space).
            return_sentence_probabilities: Add ``sentence_spans`` and ``sentence_probabilities``.
            show_progress_bar: Show a progress bar (default: only for large inputs).
            max_tokens: A token budget: of the sentences that pass ``threshold``, keep the most
                probable whose total fits ``max_tokens`` tokens of the model's tokenizer
                (greedy by keep-probability; sentences stay in their original order), across
                all documents of a question (after ``top_k``); each result then also has
                ``kept_tokens``. None: no budget.

        Returns:
            Result dicts shaped like the input: ``pruned_context`` (the kept original substrings,
            in order), ``reranking_score`` (see :func:`ranking_scores`; None in pruning_only mode),
            ``compression_rate`` (percent of characters removed) and ``kept_spans`` (char offsets
            into the context, whose concatenation is ``pruned_context``), and with
            ``max_tokens`` ``kept_tokens`` (tokens of the kept sentences). An empty or
            whitespace-only context is scored as the empty document and prunes to ``""``.

        Raises:
            ValueError: On a threshold outside [0, 1], a non-positive ``top_k``, a negative
                ``max_tokens``, inputs of the wrong shape, a question too long for the
                window, a text holding a lone surrogate (named, see
                :func:`~.checks.check_text`), or ``reorder``/``top_k`` on a pruning_only model.
            TypeError: On a ``threshold``, ``max_tokens``, question or text of the wrong type.

        Example:
            >>> result = model.process("Where is the Eiffel Tower?", "It is in Paris. Cats purr.")
            >>> sorted(result)
            ['compression_rate', 'kept_spans', 'pruned_context', 'reranking_score']
        """
        threshold = check_threshold(threshold, default=self.config.default_threshold)
        check_top_k(top_k)
        max_tokens = check_max_tokens(max_tokens)
        if reorder or top_k:
            check_ranking_head(self.config, "reorder" if reorder else "top_k")

        def split(text: str) -> list[Span]:
            if sentence_splitter is not None:
                return resolve_spans(text, sentence_splitter)
            return split_sentences(text, language)

        groups, titles, shape = group_inputs(question, context, title, presplit)
        documents = []
        for (group_question, items), group_titles in zip(groups, titles, strict=True):
            for item, doc_title in zip(items, group_titles, strict=True):
                if presplit:
                    text, spans = join_sentences(item)
                else:
                    text, spans = item, split(item)
                documents.append(
                    Document(
                        group_question,
                        text,
                        spans,
                        title=doc_title,
                        first_sentence_is_title=title == "first_sentence",
                    )
                )
        logits, probabilities = self.score_documents(
            documents, batch_size=batch_size, show_progress_bar=show_progress_bar
        )
        scores = None if logits is None else ranking_scores(logits, self.config.ranking_activation)
        grouped, offset = [], 0
        for _, items in groups:
            positions = list(range(len(items)))
            if reorder or top_k:
                assert scores is not None
                ranked = sorted(positions, key=lambda j: -scores[offset + j])
                positions = ranked[:top_k] if reorder else sorted(ranked[:top_k])
            group = prune_group(
                self.tokenizer,
                [documents[offset + j] for j in positions],
                None if scores is None else [float(scores[offset + j]) for j in positions],
                [probabilities[offset + j] for j in positions],
                threshold=threshold,
                always_select_title=always_select_title,
                max_tokens=max_tokens,
                with_probabilities=return_sentence_probabilities,
                zero_score_when_empty=self.config.zero_score_when_empty,
            )
            if reorder or top_k:
                group = [{**result, "index": j} for j, result in zip(positions, group, strict=True)]
            grouped.append(group)
            offset += len(items)
        return shaped_like_input(grouped, shape)

    @contextlib.contextmanager
    def _inference(self) -> Iterator[torch.device]:
        """Eval mode while scoring; yields the device inputs go to (backends override this)."""
        model: torch.nn.Module = self  # type: ignore[assignment]
        was_training = model.training
        model.eval()
        try:
            yield next(model.parameters()).device
        finally:
            model.train(was_training)

    # The model's one forward pass over a collated batch (input_ids, attention_mask and, where
    # the tokenizer makes them, token_type_ids): ranking logits (None without a ranking head) and
    # pruning logits. Each backend defines it.
    _heads: Callable[..., tuple[torch.Tensor | None, torch.Tensor]]

    @torch.inference_mode()
    def score_documents(
        self,
        documents: Sequence[Document],
        *,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> tuple[np.ndarray | None, list[np.ndarray]]:
        """Run the model: each document's best-window ranking logits and sentence probabilities.

        Padding-aware batching (as ``sentence_transformers.CrossEncoder`` sorts its pairs): the
        windows of a look-ahead of ``LOOKAHEAD_BATCHES * batch_size`` documents are sorted by
        length together and cut into forward passes of at most ``batch_size * max_seq_length``
        padded tokens where their lengths fall off (:func:`token_batches`; on a GPU, into as
        few passes as fit); memory stays bounded by the look-ahead, whatever the number of
        documents.

        Returns:
            ``(logits, probabilities)``: ``[documents, num_labels]`` ranking logits of each
            document's best window (None without a ranking head), and for each document the mean
            keep-probability of each of its sentences (0 for a sentence with no tokens), mapped
            by ``config.keep_calibration`` where the model has one.
        """
        check_batch_size(batch_size)
        tokenizer = self.tokenizer
        if not tokenizer.is_fast:
            raise ValueError("process() needs a fast tokenizer (offset mapping).")
        template = Template.of(tokenizer)
        all_logits: list[np.ndarray] = []
        all_probabilities: list[np.ndarray] = []
        show = len(documents) > 4 * batch_size if show_progress_bar is None else show_progress_bar
        lookahead = LOOKAHEAD_BATCHES * batch_size
        with (
            self._inference() as device,
            tqdm(total=len(documents), desc="Pruning", disable=not show, unit="doc") as progress,
        ):
            for start in range(0, len(documents), lookahead):
                chunk = documents[start : start + lookahead]
                logits, probabilities = self._score_chunk(chunk, template, batch_size, device)
                if logits is not None:
                    all_logits.append(logits)
                all_probabilities.extend(probabilities)
                progress.update(len(chunk))
        logits_array = np.concatenate(all_logits) if all_logits else None
        if logits_array is None and self.config.has_ranking_head:
            logits_array = np.zeros((0, 1), dtype=np.float32)
        return logits_array, all_probabilities

    def _score_chunk(
        self,
        chunk: Sequence[Document],
        template: Template,
        batch_size: int,
        device: torch.device,
    ) -> tuple[np.ndarray | None, list[np.ndarray]]:
        tokenizer = self.tokenizer
        max_length = int(self.config.max_seq_length)
        windows = build_windows(
            tokenizer,
            template,
            [doc.question for doc in chunk],
            [doc.text for doc in chunk],
            [doc.spans for doc in chunk],
            [doc.title for doc in chunk],
            max_length=max_length,
            per_sentence=self.config.context_tokenization == "per_sentence",
        )
        sentence_base = np.cumsum([0] + [len(doc.spans) for doc in chunk])
        window_logits: np.ndarray | None = None
        sums = np.zeros(int(sentence_base[-1]), dtype=np.float64)
        counts = np.zeros(int(sentence_base[-1]), dtype=np.float64)
        order = sorted(range(len(windows)), key=lambda w: window_length(windows[w]), reverse=True)
        lengths = [template.num_special + window_length(windows[w]) for w in order]
        budget = batch_size * max_length
        # A GPU pass costs about the same however full it is: there, the fewest passes win (and
        # the programme over a GPU-sized budget of short windows would cost as much as a pass).
        overhead = PASS_OVERHEAD_TOKENS if device.type == "cpu" else budget
        for start, stop in token_batches(lengths, budget, overhead):
            batch = [windows[w] for w in order[start:stop]]
            inputs, context_start = collate(batch, template, tokenizer.pad_token_id or 0, device)
            ranking_logits, pruning_logits = self._heads(**inputs)
            if ranking_logits is not None:
                logits = ranking_logits.float().cpu().numpy()
                if window_logits is None:
                    window_logits = np.zeros((len(windows), logits.shape[1]), dtype=np.float32)
                window_logits[order[start:stop]] = logits
            keep = torch.softmax(pruning_logits.float(), dim=-1)[..., 1]
            rows = np.concatenate(
                [np.full(len(w.context_ids), i) for i, w in enumerate(batch)] + [np.zeros(0, int)]
            )
            cols = np.concatenate(
                [np.arange(len(w.context_ids)) + context_start[i] for i, w in enumerate(batch)]
                + [np.zeros(0, int)]
            )
            token_probs = keep[torch.as_tensor(rows), torch.as_tensor(cols)].cpu().numpy()
            sentence_ids = np.concatenate([w.sentence_of_token for w in batch] + [np.zeros(0, int)])
            valid = sentence_ids >= 0
            sums += np.bincount(sentence_ids[valid], token_probs[valid], minlength=len(sums))
            counts += np.bincount(sentence_ids[valid], minlength=len(counts))
        means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        means = apply_keep_calibration(means, self.config.keep_calibration)
        probabilities = [means[sentence_base[d] : sentence_base[d + 1]] for d in range(len(chunk))]
        if window_logits is None:
            return None, probabilities
        best = np.empty((len(chunk), window_logits.shape[1]), dtype=np.float32)
        document_of_window = np.array([w.document for w in windows])
        for d in range(len(chunk)):
            mine = window_logits[document_of_window == d]
            best[d] = mine[np.argmax(mine[:, -1])]
        return best, probabilities


def ranking_scores(logits: np.ndarray, activation: str = "sigmoid") -> np.ndarray:
    """``[documents]`` reranking scores from ``[documents, 1]`` ranking logits: with
    ``"sigmoid"`` the logit's sigmoid (a probability), with ``"identity"`` the raw logit (see
    ``PruningEncoderConfig.ranking_activation``). The one rule of ``process()``, ``predict()``,
    ``rank()`` and the service.

    Raises:
        ValueError: Several logits per document (see :func:`~.checks.check_num_labels`).
    """
    check_num_labels(logits.shape[1], f"ranking logits of shape {tuple(logits.shape)}")
    logit = logits[:, 0].astype(np.float64)
    if activation == "identity":
        return logit
    return 1.0 / (1.0 + np.exp(-logit))


def prune_group(
    tokenizer: PreTrainedTokenizerBase,
    documents: Sequence[Document],
    scores: Sequence[float] | None,
    probabilities: Sequence[np.ndarray],
    *,
    threshold: float,
    always_select_title: bool = True,
    max_tokens: int | None = None,
    with_probabilities: bool = False,
    zero_score_when_empty: bool = False,
) -> list[Result]:
    """The result dicts of the documents of one question, from their scores and sentence
    keep-probabilities (what ``process()`` returns for them; see ``select_sentences``); with
    ``zero_score_when_empty``, a document of which nothing is kept scores 0."""
    selections = select_sentences(
        probabilities,
        threshold=threshold,
        titles=[doc.first_sentence_is_title for doc in documents],
        always_select_title=always_select_title,
        max_tokens=max_tokens,
        count_tokens=lambda d, sentences: _count_tokens(tokenizer, documents[d], sentences),
    )
    results = []
    for d, (doc, probs, selection) in enumerate(
        zip(documents, probabilities, selections, strict=True)
    ):
        score = None if scores is None else scores[d]
        if zero_score_when_empty and score is not None and not selection.keep.any():
            score = 0.0
        results.append(result_record(doc, score, probs, selection, with_probabilities))
    return results


def result_record(
    doc: Document,
    score: float | None,
    probabilities: np.ndarray,
    selection: Selection,
    with_probabilities: bool = False,
) -> Result:
    """One document's result, the one shape of every surface (``process()``, the pipeline, the
    service, the engines' columns, the command line's JSON): :data:`RESULT_FIELDS`, then
    ``kept_tokens`` under a token budget and :data:`SENTENCE_FIELDS` on request.

    Args:
        doc: The document.
        score: Its reranking score (None without a ranking head).
        probabilities: ``[sentences]`` keep-probabilities.
        selection: Its kept sentences (:func:`~.token_budget.select_sentences`).
        with_probabilities: Add the sentence spans and their keep-probabilities.
    """
    spans = kept_spans(doc.text, doc.spans, selection.keep)
    pruned = "".join(doc.text[s:e] for s, e in spans)
    removed = 100.0 * (len(doc.text) - len(pruned)) / len(doc.text) if doc.text else 0.0
    result: Result = {
        "pruned_context": pruned,
        "reranking_score": score,
        "compression_rate": removed,
        "kept_spans": spans,
    }
    if selection.kept_tokens is not None:
        result["kept_tokens"] = selection.kept_tokens
    if with_probabilities:
        result["sentence_spans"] = list(doc.spans)
        result["sentence_probabilities"] = [float(p) for p in probabilities]
    return result


def _count_tokens(
    tokenizer: PreTrainedTokenizerBase, doc: Document, sentences: np.ndarray
) -> list[int]:
    """Tokens of each given sentence of ``doc`` in the model's tokenizer, no special tokens."""
    return sentence_tokens(tokenizer, doc.text, [doc.spans[s] for s in sentences])


def sentence_tokens(
    tokenizer: PreTrainedTokenizerBase, text: str, spans: Sequence[Span]
) -> list[int]:
    """Tokens of each sentence ``spans`` of ``text`` in the model's tokenizer, no special
    tokens: what a token budget (``max_tokens``) charges for it, before its minimum of one."""
    if not spans:
        return []
    pieces = [text[start:end] for start, end in spans]
    return [len(ids) for ids in tokenizer(pieces, add_special_tokens=False)["input_ids"]]


def kept_spans(text: str, spans: Sequence[Span], keep: np.ndarray) -> list[Span]:
    """Runs of kept sentences; each run but the last takes the whitespace that follows it.

    The one kept-span rule: ``process()`` and every evaluation (the model and the baselines)
    turn a keep mask (``[sentences]``) over the sentence ``spans`` of ``text`` into these.
    """
    runs: list[list[int]] = []
    for i, (start, end) in enumerate(spans):
        if not keep[i]:
            continue
        if runs and keep[i - 1]:
            runs[-1][1] = end
        else:
            runs.append([start, end])
    for run in runs[:-1]:
        gap = text[run[1] :]
        run[1] += len(gap) - len(gap.lstrip())
    return [(start, end) for start, end in runs]
