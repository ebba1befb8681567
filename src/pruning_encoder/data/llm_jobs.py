"""What labelling and question writing share: asking a model for JSON until a reply is valid,
and running the items of a job on threads, in input order, with a progress bar and counts.

``ask`` sends the request; a reply that is not valid (not JSON, or refused by the caller's
check) is answered with the reason, so the next attempt is a new request that shows the model
its mistake; a request without a reply (a timeout, HTTP 429/5xx) is sent again after a pause;
both within ``retries``. Its failure is a :class:`JobFailed` with the last reason, which the job
reports for its item: nothing is dropped silently, and one item never stops the others.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tqdm.auto import tqdm

from .llm_client import ChatClient, LLMError, LLMSetupError

T = TypeVar("T")
Messages = list[dict[str, str]]


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
        """One line: ``{what} {done}, failed ..., s per item``; seconds per item are wall-clock
        seconds over items, so with concurrency they measure throughput, not latency."""
        items = self.done + self.failed
        per_item = self.seconds / items if items else 0.0
        return (
            f"{what} {self.done}, failed {self.failed}, {self.requests} requests, "
            f"{self.cache_hits} replies from the cache, {per_item:.2f} s per item "
            f"({self.seconds:.1f} s in all)"
        )


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


class LLMJob:
    """What the LLM jobs share (:class:`~.llm_labels.LLMLabeller`,
    :class:`~.llm_questions.QuestionWriter`): the client, the retry policy, the threads and the
    counts.

    Raises:
        ValueError: ``retries`` < 0 or ``concurrency`` < 1.
    """

    def __init__(
        self,
        client: ChatClient,
        *,
        retries: int = 2,
        retry_wait: float = 1.0,
        concurrency: int = 1,
        language: str = "auto",
    ) -> None:
        if retries < 0 or concurrency < 1:
            raise ValueError("retries must be >= 0 and concurrency >= 1")
        self.client = client
        self.retries = retries
        self.retry_wait = retry_wait
        self.concurrency = concurrency
        self.language = language
        self.stats = JobStats()

    def _run(
        self, items: Sequence[Any], one: Callable[[Any, int], Outcome], show: bool, desc: str
    ) -> Iterator[Outcome]:
        return run_jobs(
            items,
            one,
            client=self.client,
            stats=self.stats,
            concurrency=self.concurrency,
            show_progress_bar=show,
            desc=desc,
        )


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
