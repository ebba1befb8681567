"""``process()``: score and prune contexts for a question, Provence-style, in one forward pass.

The data path: inputs → documents → sentence spans (char offsets into the original text) → one
tokenizer call per chunk (questions and contexts apart, offsets on) → windows of whole sentences
that fit ``max_length``, each with the question → model → mean keep-probability per sentence →
threshold → kept spans. This module travels with saved weights, so it imports only the standard
library, numpy, torch and transformers.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase
from transformers.utils.logging import tqdm

from .sentence_splitter import Span, resolve_spans, split_sentences
from .token_budget import Selection, check_max_tokens, select_sentences
from .windows import (
    PASS_OVERHEAD_TOKENS,
    Template,
    Window,
    collate,
    pack_windows,
    question_limit,
    token_batches,
    tokenize_contexts,
    window_length,
)

Result = dict[str, Any]
# How many batches' worth of documents score_documents sorts by length together.
LOOKAHEAD_BATCHES = 16
# A str can hold surrogate code points (a JSON "\ud83d" escape cut from its pair, text cut by
# UTF-16 length, bytes decoded with "surrogateescape"); no tokenizer or UTF-8 writer accepts them.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class Document:
    """One (question, context) job: its text, its sentence spans and an optional title."""

    question: str
    text: str
    spans: list[Span]
    title: str | None = None
    first_sentence_is_title: bool = False


def check_threshold(threshold: Any) -> float:
    """``threshold`` as a float in [0, 1]; the one rule of every surface (Python, CLI, service,
    pipeline, integrations).

    Raises:
        TypeError: Not a real number (``True`` is refused, not read as 1.0).
        ValueError: Outside [0, 1].
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.floating):
        raise TypeError(f"threshold must be a number in [0, 1], got {threshold!r}.")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], got {threshold}.")
    return float(threshold)


def check_top_k(top_k: Any, name: str = "top_k") -> int | None:
    """``top_k`` as None (everything) or a positive integer; the rule of every surface.

    Raises:
        ValueError: Not an integer (``True`` is refused), or zero or negative.
    """
    if top_k is None:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {top_k!r}.")
    return int(top_k)


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
                window, or a text holding a lone surrogate (named, see :func:`check_text`).
                TypeError: On a ``threshold``, ``top_k`` or ``max_tokens`` of the wrong type.

        Example:
            >>> result = model.process("Where is the Eiffel Tower?", "It is in Paris. Cats purr.")
            >>> sorted(result)
            ['compression_rate', 'kept_spans', 'pruned_context', 'reranking_score']
        """
        threshold = check_threshold(
            self.config.default_threshold if threshold is None else threshold
        )
        check_top_k(top_k)
        max_tokens = check_max_tokens(max_tokens)
        if (reorder or top_k) and not self.config.has_ranking_head:
            raise ValueError("reorder and top_k need reranking scores: this model is pruning_only.")

        def split(text: str) -> list[Span]:
            if sentence_splitter is not None:
                return resolve_spans(text, sentence_splitter)
            return split_sentences(text, language)

        groups, shape = _normalise(question, context, presplit)
        titles = _normalise_titles(title, groups, shape)
        _check_texts(groups, shape, presplit, titles)
        documents = []
        for (group_question, items), group_titles in zip(groups, titles, strict=True):
            for item, doc_title in zip(items, group_titles, strict=True):
                if presplit:
                    text, spans = _join_sentences(item)
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
        if shape == "single":
            return grouped[0][0]
        if shape == "documents":
            return grouped[0]
        if shape == "aligned":
            return [group[0] for group in grouped]
        return grouped

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

    def _heads(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Ranking logits (None without a ranking head) and pruning logits of one batch."""
        raise NotImplementedError

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
            keep-probability of each of its sentences (0 for a sentence with no tokens).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
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
        limit = question_limit(max_length, template)
        questions = tokenizer(
            [doc.question for doc in chunk], add_special_tokens=False, verbose=False
        )["input_ids"]
        contexts = tokenize_contexts(
            tokenizer,
            [doc.text for doc in chunk],
            [doc.spans for doc in chunk],
            per_sentence=self.config.context_tokenization == "per_sentence",
        )
        titles = tokenizer(
            [doc.title or "" for doc in chunk], add_special_tokens=False, verbose=False
        )["input_ids"]
        windows: list[Window] = []
        sentence_base = np.cumsum([0] + [len(doc.spans) for doc in chunk])
        for d, doc in enumerate(chunk):
            taken = len(questions[d]) + len(titles[d])
            budget = max_length - template.num_special - taken
            if taken > limit:
                raise ValueError(
                    f"The question (and title) take {taken} tokens, leaving too little of "
                    f"max_length={max_length} for the context: at most "
                    f"{limit} fit."
                )
            if not doc.spans:  # nothing to keep: score the empty document
                windows.append(Window(d, questions[d], titles[d], [], np.zeros(0, np.int64)))
                continue
            ids, owner, inside = contexts[d]
            counted = np.where(inside, owner + sentence_base[d], -1)
            for a, b in pack_windows(owner, len(doc.spans), budget):
                windows.append(Window(d, questions[d], titles[d], ids[a:b], counted[a:b]))
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
    """``[documents]`` reranking scores from ``[documents, num_labels]`` logits: with
    ``"sigmoid"`` the positive (last) class's probability (a sigmoid of one logit, a softmax over
    several), with ``"identity"`` its raw logit (see ``PruningEncoderConfig.ranking_activation``).
    """
    if activation == "identity":
        return logits[:, -1].astype(np.float64)
    if logits.shape[1] == 1:
        return 1.0 / (1.0 + np.exp(-logits[:, 0].astype(np.float64)))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted[:, -1] / shifted.sum(axis=1)


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
        results.append(_result(doc, score, probs, selection, with_probabilities))
    return results


def _result(
    doc: Document,
    score: float | None,
    probabilities: np.ndarray,
    selection: Selection,
    with_probabilities: bool,
) -> Result:
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


def _join_sentences(sentences: Sequence[str]) -> tuple[str, list[Span]]:
    spans: list[Span] = []
    parts: list[str] = []
    position = 0
    for sentence in sentences:
        sentence = sentence.strip()
        if not sentence:
            continue
        if parts:
            position += 1
        spans.append((position, position + len(sentence)))
        parts.append(sentence)
        position += len(sentence)
    return " ".join(parts), spans


def _is_document(value: Any, presplit: bool) -> bool:
    if presplit:
        return isinstance(value, list | tuple) and all(isinstance(s, str) for s in value)
    return isinstance(value, str)


def check_text(value: Any, what: str) -> str:
    """``value`` if it is a string of valid Unicode text; the rule of every surface (Python, CLI,
    service) for a question, a context, a sentence, a title or a document.

    Args:
        value: The text.
        what: Its name in messages, e.g. ``"context[2]"``.

    Raises:
        TypeError: Not a string.
        ValueError: It holds a lone surrogate (e.g. ``"\\udbc0"``), which no tokenizer reads and
            UTF-8 cannot encode; the message names ``what``, the code point and its position.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}.")
    if not value.isascii() and (found := _SURROGATE.search(value)):
        raise ValueError(
            f"{what} holds a lone surrogate (U+{ord(found.group()):04X}) at character "
            f"{found.start()}: not valid Unicode text. Remove or replace it, e.g. with "
            "text.encode('utf-8', 'replace').decode('utf-8')."
        )
    return value


def _check_texts(
    groups: list[tuple[str, list[Any]]], shape: str, presplit: bool, titles: Any
) -> None:
    """Every question, context (or sentence) and title string as :func:`check_text`, named by
    its position in the caller's input."""
    for i, (question, items) in enumerate(groups):
        check_text(question, "question" if shape in ("single", "documents") else f"question[{i}]")
        for j, item in enumerate(items):
            name = {
                "single": "context",
                "documents": f"context[{j}]",
                "aligned": f"context[{i}]",
            }.get(shape, f"context[{i}][{j}]")
            for k, text in enumerate(item if presplit else [item]):
                check_text(text, f"{name}[{k}]" if presplit else name)
            title = titles[i][j]
            if title is not None:
                check_text(title, "title")


def _normalise(
    question: Any, context: Any, presplit: bool
) -> tuple[list[tuple[str, list[Any]]], str]:
    """Group the inputs as (question, documents) pairs and name the input shape."""
    kind = "a list of sentences" if presplit else "a string"
    if context is None:
        raise ValueError("context is None: give a string, a list of documents, or a list of lists.")
    if isinstance(question, str):
        if _is_document(context, presplit):
            return [(question, [context])], "single"
        if isinstance(context, list | tuple) and all(_is_document(c, presplit) for c in context):
            return [(question, list(context))], "documents"
        raise ValueError(
            f"With one question, context must be a document ({kind}) or a list of documents."
        )
    if not isinstance(question, list | tuple):
        raise TypeError(f"question must be a string or a list of strings, got {type(question)}.")
    for i, q in enumerate(question):
        check_text(q, f"question[{i}]")
    if not isinstance(context, list | tuple) or len(context) != len(question):
        got = len(context) if isinstance(context, list | tuple) else type(context).__name__
        raise ValueError(
            f"With a list of {len(question)} questions, context must be a list of the same length "
            f"(got {got})."
        )
    if all(_is_document(c, presplit) for c in context):
        return [(q, [c]) for q, c in zip(question, context, strict=True)], "aligned"
    if all(
        isinstance(c, list | tuple) and all(_is_document(d, presplit) for d in c) for c in context
    ):
        return [(q, list(c)) for q, c in zip(question, context, strict=True)], "nested"
    raise ValueError(
        f"With a list of questions, context must hold one document ({kind}) per question or one "
        "list of documents per question, not a mix."
    )


def _normalise_titles(
    title: Any, groups: list[tuple[str, list[Any]]], shape: str
) -> list[list[str | None]]:
    if title is None or title == "first_sentence":
        return [[None] * len(items) for _, items in groups]
    if isinstance(title, str):
        return [[title] * len(items) for _, items in groups]
    try:
        if shape == "documents":
            shaped = [list(title)]
        elif shape == "aligned":
            shaped = [[t] for t in title]
        elif shape == "nested":
            shaped = [list(t) for t in title]
        else:
            shaped = []
    except TypeError:
        shaped = []
    fits = len(shaped) == len(groups) and all(
        len(group) == len(items) and all(isinstance(t, str) for t in group)
        for group, (_, items) in zip(shaped, groups, strict=False)
    )
    if not fits:
        raise ValueError(
            "title must be None, 'first_sentence', one string, or strings shaped like context."
        )
    return shaped  # type: ignore[return-value]
