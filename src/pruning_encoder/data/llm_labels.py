"""Sentence labels from a language model: a question and a context in, a training record out.

The context is split with :func:`~pruning_encoder.split_sentences` and shown to the model as
numbered sentences; the model first writes a short answer, then the numbers of the sentences the
answer comes from (of two prompts measured on FanOutQA validation contexts with
Qwen2.5-Coder-1.5B, this one put the answer inside the labels in 82% of them, against 56% for
asking for the numbers alone). The reply is JSON, constrained by a schema where the server
supports it, and validated: ``answer`` a string, ``sentences`` distinct integers 1..n. What can be
checked is recorded: whether the answer the model wrote occurs in the sentences it named
(``answer_in_labels``); ``require_answer_match`` makes a mismatch a failure.

A reply that fails validation is answered with the reason and asked again; a request that gets
no reply (a timeout, HTTP 429/5xx) is sent again after a pause; both within ``retries``. An item
that still fails becomes a failure with its reason: it is never dropped, and the job goes on.

Each labelled item is one training record (:mod:`pruning_encoder.dataset`): ``texts`` holds the
context as one text (documents joined by newlines stay one text, as in the FanOutQA benchmark's
contexts), ``relevant_spans`` the character spans of the named sentences, ``labels`` 1.0 when
the model named a sentence and 0.0 when it named none; ``id`` and ``answers`` of the input are
carried; its other fields and the model's reply go to ``meta``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tqdm.auto import tqdm

from ..context_pruning import check_text
from ..sentence_splitter import Span, split_sentences
from .llm_client import ChatClient, LLMError, LLMSetupError

logger = logging.getLogger(__name__)

T = TypeVar("T")
Messages = list[dict[str, str]]

LABEL_SYSTEM = "You find the sentences of a text that answer a question."
LABEL_PROMPT = """\
Question: {question}

Numbered sentences:
{sentences}

First write the answer alone, in as few words as the sentences allow (a name, a date, a number \
or a short phrase), copied from them. Then list the numbers of the sentences the answer comes \
from. If no sentence answers the question, write an empty answer and an empty list. Reply with \
JSON only: {{"answer": "...", "sentences": [numbers]}}"""
MAX_ANSWER_CHARS = 100
# Around an answer, what the check ignores: "1793." occurs in "opened in 1793, ...".
ANSWER_EDGES = " \t\n.,;:!?\"'()[]"
# The input fields that become fields of the training record; the others go to meta["input"].
RECORD_FIELDS = ("question", "context", "id", "answers")


class InvalidReply(ValueError):
    """A reply that does not hold what was asked; the message is told to the model on retry."""


@dataclass
class Outcome:
    """What one input item gave.

    Attributes:
        index: The item's position in the input (0-based).
        outputs: The records it gave (a labelled item: one training record).
        failures: Why it (or a part of it) gave nothing: ``{"reason": str, ...}``.
        seconds: Wall-clock seconds spent on it.
    """

    index: int
    outputs: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class JobStats:
    """Counts of a job so far: ``done`` items gave an output, ``failed`` items did not;
    ``requests`` were sent, ``cache_hits`` were served from the cache; ``seconds`` of wall
    clock."""

    done: int = 0
    failed: int = 0
    requests: int = 0
    cache_hits: int = 0
    seconds: float = 0.0

    def summary(self, what: str) -> str:
        items = self.done + self.failed
        per_item = self.seconds / items if items else 0.0
        return (
            f"{what} {self.done}, failed {self.failed}, {self.requests} requests, "
            f"{self.cache_hits} replies from the cache, {per_item:.2f} s per item "
            f"({self.seconds:.1f} s in all)"
        )


class LLMLabeller:
    """Labels the sentences of contexts that answer their questions, with a chat model.

    Args:
        client: The model (see :class:`~pruning_encoder.data.llm_client.ChatClient`).
        retries: Further attempts after a failed one (an invalid reply, or no reply).
        retry_wait: Seconds before the first resend of an unanswered request; doubled each time.
        require_answer_match: Fail an item (after retries) whose answer does not occur in the
            sentences the model named.
        concurrency: Items labelled at once (threads; each waits on its request).
        language: Of the sentence splitter: ``"auto"``, ``"en"``, ``"ja"`` or ``"zh"``.

    Example:
        >>> with ChatClient("http://localhost:8080/v1", model="qwen") as client:  # doctest: +SKIP
        ...     for outcome in LLMLabeller(client).label([{"question": q, "context": c}]):
        ...         print(outcome.outputs or outcome.failures)
    """

    def __init__(
        self,
        client: ChatClient,
        *,
        retries: int = 2,
        retry_wait: float = 1.0,
        require_answer_match: bool = False,
        concurrency: int = 1,
        language: str = "auto",
    ) -> None:
        if retries < 0 or concurrency < 1:
            raise ValueError("retries must be >= 0 and concurrency >= 1")
        self.client = client
        self.retries = retries
        self.retry_wait = retry_wait
        self.require_answer_match = require_answer_match
        self.concurrency = concurrency
        self.language = language
        self.stats = JobStats()

    def label(
        self, items: Sequence[dict[str, Any]], *, show_progress_bar: bool = False
    ) -> Iterator[Outcome]:
        """Label each item (``{"question": str, "context": str, ...}``), in input order.

        Yields:
            One :class:`Outcome` per item: one training record in ``outputs``, or the reason
            in ``failures`` (an invalid item, or no valid reply within the retries).

        Raises:
            LLMSetupError: The endpoint refuses the job (wrong URL, API key or model name).
        """
        return run_jobs(
            items,
            self.label_one,
            client=self.client,
            stats=self.stats,
            concurrency=self.concurrency,
            show_progress_bar=show_progress_bar,
            desc="label",
        )

    def label_one(self, item: dict[str, Any], index: int = 0) -> Outcome:
        """Label one item; see :meth:`label`."""
        outcome = Outcome(index)
        try:
            question, context, spans = self._parse_item(item)
        except (ValueError, TypeError) as error:
            outcome.failures.append({"reason": f"invalid input: {error}"})
            return outcome
        sentences = [context[start:end] for start, end in spans]
        messages = [
            {"role": "system", "content": LABEL_SYSTEM},
            {
                "role": "user",
                "content": LABEL_PROMPT.format(
                    question=question, sentences=numbered(sentences)
                ),
            },
        ]

        def check(reply: Any) -> tuple[str, list[int], bool | None]:
            answer, chosen = check_label_reply(reply, len(sentences))
            found = answer_in_labels(answer, [sentences[n - 1] for n in chosen])
            if self.require_answer_match and found is False:
                named = ", ".join(map(str, chosen)) or "none"
                raise InvalidReply(
                    f"the answer {answer!r} does not occur in the sentences named ({named}); "
                    "name the sentences that hold the answer"
                )
            return answer, chosen, found

        try:
            answer, chosen, found = ask(
                self.client,
                messages,
                label_schema(len(sentences)),
                "sentence_labels",
                check,
                retries=self.retries,
                retry_wait=self.retry_wait,
            )
        except JobFailed as error:
            outcome.failures.append({"reason": str(error)})
            return outcome
        outcome.outputs.append(
            self._record(item, question, context, [spans[n - 1] for n in chosen], answer, found)
        )
        return outcome

    def _parse_item(self, item: Any) -> tuple[str, str, list[Span]]:
        if not isinstance(item, dict):
            raise TypeError(f"expected an object with 'question' and 'context', got {item!r:.60}")
        for name in ("question", "context"):
            if name not in item:
                raise ValueError(f"missing field {name!r}")
            check_text(item[name], f"field {name!r}")
        if not item["question"].strip():
            raise ValueError("field 'question' is empty")
        spans = split_sentences(item["context"], self.language)
        if not spans:
            raise ValueError("field 'context' has no sentences")
        answers = item.get("answers", [])
        if not isinstance(answers, list) or not all(isinstance(a, str) and a for a in answers):
            raise ValueError("field 'answers' must be a list of non-empty strings")
        return item["question"], item["context"], spans

    def _record(
        self,
        item: dict[str, Any],
        question: str,
        context: str,
        spans: list[Span],
        answer: str,
        found: bool | None,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "query": question,
            "texts": [context],
            "labels": [1.0 if spans else 0.0],
            "relevant_spans": [[list(span) for span in spans]],
        }
        if item.get("answers"):
            record["answers"] = item["answers"]
        if "id" in item:
            record["id"] = item["id"]
        extra = {key: value for key, value in item.items() if key not in RECORD_FIELDS}
        record["meta"] = {
            "llm": {"model": self.client.model, "answer": answer, "answer_in_labels": found},
            **({"input": extra} if extra else {}),
        }
        return record


class JobFailed(Exception):
    """An item that got no valid reply within the retries; the message says why."""


def ask(
    client: ChatClient,
    messages: Messages,
    schema: dict[str, Any],
    name: str,
    check: Callable[[Any], T],
    *,
    retries: int,
    retry_wait: float,
) -> T:
    """``check``'s result for the model's JSON reply to ``messages``, within ``1 + retries``
    attempts.

    An invalid reply (not JSON, or ``check`` raises :class:`InvalidReply`) is answered with the
    reason, so the next attempt is a new request; a request without a reply is sent again after
    ``retry_wait * 2**k`` seconds when the error is retryable.

    Raises:
        JobFailed: No valid reply; the message holds the last reason and the attempts made.
        LLMSetupError: From the client: the job cannot run.
    """
    reason = ""
    for attempt in range(1, retries + 2):
        try:
            content = client.complete(client.body(messages, schema, name))
        except LLMSetupError:
            raise
        except LLMError as error:
            reason = str(error)
            if not error.retryable:
                break
            if attempt <= retries:
                time.sleep(retry_wait * 2 ** (attempt - 1))
            continue
        try:
            return check(parse_reply(content))
        except InvalidReply as error:
            reason = f"invalid reply: {error}"
            messages = [
                *messages,
                {"role": "assistant", "content": content},
                {"role": "user", "content": f"That reply is invalid: {error}. Reply again."},
            ]
    raise JobFailed(f"{reason} (after {attempt} attempt{'s' * (attempt > 1)})")


def run_jobs(
    items: Sequence[Any],
    job: Callable[[Any, int], Outcome],
    *,
    client: ChatClient,
    stats: JobStats,
    concurrency: int,
    show_progress_bar: bool,
    desc: str,
) -> Iterator[Outcome]:
    """``job(item, index)`` over ``items`` on ``concurrency`` threads, yielded in input order,
    with a progress bar; counts into ``stats`` (the requests and cache hits of ``client``)."""
    requests, hits = client.requests, client.cache_hits
    started = time.monotonic()

    def timed(index: int) -> Outcome:
        begun = time.monotonic()
        outcome = job(items[index], index)
        outcome.seconds = time.monotonic() - begun
        return outcome

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="llm")
    try:
        results = pool.map(timed, range(len(items)))
        bar = tqdm(results, total=len(items), desc=desc, unit="item", disable=not show_progress_bar)
        for outcome in bar:
            if outcome.outputs:
                stats.done += 1
            else:
                stats.failed += 1
            stats.requests += client.requests - requests
            stats.cache_hits += client.cache_hits - hits
            requests, hits = client.requests, client.cache_hits
            stats.seconds += time.monotonic() - started
            started = time.monotonic()
            yield outcome
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def numbered(sentences: Sequence[str]) -> str:
    """``[1] first sentence`` lines; line breaks inside a sentence become spaces."""
    return "\n".join(f"[{n}] {' '.join(s.split())}" for n, s in enumerate(sentences, start=1))


def label_schema(count: int) -> dict[str, Any]:
    """The JSON schema of a labelling reply for ``count`` numbered sentences."""
    return {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "maxLength": MAX_ANSWER_CHARS},
            "sentences": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1, "maximum": count},
                "maxItems": count,
            },
        },
        "required": ["answer", "sentences"],
        "additionalProperties": False,
    }


def parse_reply(content: str) -> dict[str, Any]:
    """The JSON object of a reply (a Markdown code fence around it is allowed).

    Raises:
        InvalidReply: Not a JSON object.
    """
    text = content.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, flags=re.DOTALL)
    if fenced:
        text = fenced.group(1)
    try:
        reply = json.loads(text)
    except ValueError as error:
        raise InvalidReply(f"not valid JSON ({error}): {content[:120]!r}") from None
    if not isinstance(reply, dict):
        raise InvalidReply(f"expected a JSON object, got {content[:120]!r}")
    return reply


def sentence_number(value: Any, count: int, what: str) -> int:
    """``value`` as a sentence number in 1..``count``; raises :class:`InvalidReply`."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidReply(f"{what} must be an integer, got {value!r}")
    if not 1 <= value <= count:
        raise InvalidReply(f"{what} is {value}; the sentences are numbered 1 to {count}")
    return value


def check_label_reply(reply: dict[str, Any], count: int) -> tuple[str, list[int]]:
    """The answer and the sorted sentence numbers of a labelling reply.

    Raises:
        InvalidReply: ``answer`` is not a string, ``sentences`` not a list of distinct
            integers in 1..``count``.
    """
    answer, chosen = reply.get("answer"), reply.get("sentences")
    if not isinstance(answer, str):
        raise InvalidReply(f"'answer' must be a string, got {answer!r}")
    if not isinstance(chosen, list):
        raise InvalidReply(f"'sentences' must be a list of sentence numbers, got {chosen!r}")
    numbers = [sentence_number(n, count, "each sentence number") for n in chosen]
    if len(set(numbers)) != len(numbers):
        raise InvalidReply(f"'sentences' names a sentence twice: {numbers}")
    return answer.strip(), sorted(numbers)


def answer_in_labels(answer: str, sentences: Iterable[str]) -> bool | None:
    """Whether ``answer`` occurs in ``sentences`` (case, runs of whitespace and the punctuation
    around the answer ignored); None when there is nothing to check (no answer, no sentence);
    False for an answer without sentences or sentences without an answer."""
    sentences = list(sentences)
    needle = _normal(answer).strip(ANSWER_EDGES)
    if not needle and not sentences:
        return None
    return bool(needle) and needle in _normal(" ".join(sentences))


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())
