"""The HTTP service: TEI's ``/rerank``, plus ``/prune``, ``/health``, ``/info`` and a page to try
the model at ``/`` (:func:`pruning_encoder.web.service_page`).

``create_app(model)`` builds a FastAPI app; ``pruning-encoder serve`` runs it with uvicorn.
Requests never run the model on the event loop: a :class:`Batcher` gathers the documents of
concurrent requests into one ``score_documents`` call in a worker thread, so many small requests
share forward passes. Errors are JSON in TEI's shape, ``{"error": ..., "error_type": ...}``:
413 for too many texts or characters, 422 for a malformed or empty request (a text holding a
lone surrogate included, as ``process()`` refuses it).

FastAPI and uvicorn are the optional ``[serve]`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import AfterValidator, BaseModel, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .batch_retry import retry_row_by_row
from .checks import check_question_tokens, check_ranking_head, check_text
from .context_pruning import Document, prune_group, ranking_scores
from .fields import MaxTokens, Threshold
from .highlight import check_tags, highlight
from .pruning_encoder import PruningEncoder
from .sentence_splitter import split_sentences
from .web import service_page

DEFAULT_MAX_TEXTS = 256
DEFAULT_MAX_CHARS = 2_000_000


# process()'s rule for text: a lone surrogate ("\udbc0" in the JSON) is a 422 naming the field.
Text = Annotated[str, AfterValidator(lambda text: check_text(text, "the text"))]


class Tags(BaseModel):
    """``pre_tag`` and ``post_tag``: with both, each result gains ``highlighted`` (the whole
    text with its kept sentences wrapped in them, as :func:`~pruning_encoder.highlight`)."""

    pre_tag: Text | None = None
    post_tag: Text | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> Tags:
        check_tags(self.pre_tag, self.post_tag)
        return self

    def highlighted(self, result: dict[str, Any], text: str) -> str | None:
        if self.pre_tag is None or self.post_tag is None:
            return None
        return highlight(result, text, pre_tag=self.pre_tag, post_tag=self.post_tag)


class RerankRequest(Tags):
    """TEI's rerank request, plus ``prune`` (add ``pruned_text``) and its ``threshold``."""

    query: Text
    texts: list[Text]
    raw_scores: bool = False
    return_text: bool = False
    truncate: bool = Field(
        default=False, description="Accepted for TEI compatibility: long texts are read whole."
    )
    prune: bool = False
    threshold: Threshold = None
    max_tokens: MaxTokens = None

    @model_validator(mode="after")
    def _tags_need_pruning(self) -> RerankRequest:
        if self.pre_tag is not None and not self.prune:
            raise ValueError("pre_tag and post_tag mark pruned texts: they need prune: true")
        return self


class Rank(BaseModel):
    index: int
    score: float
    text: str | None = None
    pruned_text: str | None = None
    highlighted: str | None = None


class PruneRequest(Tags):
    question: Text
    contexts: list[Text]
    threshold: Threshold = None
    max_tokens: MaxTokens = None
    return_sentence_probabilities: bool = False


class PruneResult(BaseModel):
    pruned_context: str
    reranking_score: float | None
    compression_rate: float
    kept_spans: list[tuple[int, int]]
    kept_tokens: int | None = None
    highlighted: str | None = None
    sentence_spans: list[tuple[int, int]] | None = None
    sentence_probabilities: list[float] | None = None


class PruneResponse(BaseModel):
    results: list[PruneResult]


class ServiceError(Exception):
    def __init__(self, status: int, message: str, kind: str = "Validation") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


@dataclass
class _Job:
    documents: list[Document]
    done: asyncio.Future[tuple[np.ndarray | None, list[np.ndarray]]] = field(repr=False)


class Batcher:
    """Runs the documents of concurrent requests through the model together, off the loop.

    A request cancelled while it waits or while its batch runs (a client that hangs up, a proxy's
    timeout) is skipped or has its result dropped; it never stops the batcher or fails the
    requests batched with it.

    Args:
        model: The model to score with.
        max_documents: The most documents one model call takes (whole requests are never split).
    """

    def __init__(self, model: PruningEncoder, max_documents: int) -> None:
        self.model = model
        self.max_documents = max_documents
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._batch: list[_Job] = []

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the worker; requests still waiting or in its batch are cancelled."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while not self._queue.empty():
            self._batch.append(self._queue.get_nowait())
        for job in self._batch:
            job.done.cancel()
        self._batch = []

    async def score(self, documents: list[Document]) -> tuple[np.ndarray | None, list[np.ndarray]]:
        job = _Job(documents, asyncio.get_running_loop().create_future())
        await self._queue.put(job)
        return await job.done

    async def _run(self) -> None:
        while True:
            self._batch = jobs = await self._next_batch()
            # One request's fault must not fail the others: a failed batch is retried request
            # by request.
            outcomes = await asyncio.to_thread(
                retry_row_by_row, self._score_jobs, jobs, errors=(Exception,)
            )
            for job, outcome in zip(jobs, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    _settle(job, error=outcome)
                else:
                    _settle(job, outcome)

    def _score_jobs(self, jobs: list[_Job]) -> list[tuple[np.ndarray | None, list[np.ndarray]]]:
        """Each request's share of one model call over the documents of all of them."""
        documents = [doc for job in jobs for doc in job.documents]
        logits, probabilities = self.model.model.score_documents(documents, show_progress_bar=False)
        shares, start = [], 0
        for job in jobs:
            end = start + len(job.documents)
            shares.append((None if logits is None else logits[start:end], probabilities[start:end]))
            start = end
        return shares

    async def _next_batch(self) -> list[_Job]:
        """Waiting requests, whole, up to ``max_documents`` documents; cancelled ones skipped."""
        jobs: list[_Job] = []
        size = 0
        while not jobs or (not self._queue.empty() and size < self.max_documents):
            job = await self._queue.get()
            if not job.done.done():
                jobs.append(job)
                size += len(job.documents)
        return jobs


def _settle(
    job: _Job,
    result: tuple[np.ndarray | None, list[np.ndarray]] | None = None,
    *,
    error: Exception | None = None,
) -> None:
    """Give a request its result or error, unless it was cancelled meanwhile (a cancelled
    future refuses both, with an ``InvalidStateError`` that would end the batcher)."""
    if job.done.done():
        return
    if error is not None:
        job.done.set_exception(error)
    elif result is not None:
        job.done.set_result(result)


def _problem(error: dict[str, Any]) -> str:
    """One validation error as ``field: message``: our own checks' words as they wrote them
    (without pydantic's "Value error, "), a JSON syntax error with where it is."""
    reason = error.get("ctx", {}).get("error")
    if error["type"] == "json_invalid":
        position = next((p for p in error["loc"] if isinstance(p, int)), None)
        where = "" if position is None else f" at character {position}"
        return f"body: not valid JSON{where}" + (f" ({reason})" if reason else "")
    message = str(reason) if error["type"] == "value_error" and reason else error["msg"]
    field = ".".join(str(p) for p in error["loc"] if p != "body") or "body"
    return f"{field}: {message}"


def create_app(
    model: PruningEncoder,
    *,
    model_id: str | None = None,
    max_texts: int = DEFAULT_MAX_TEXTS,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> FastAPI:
    """The service for ``model``.

    Args:
        model: The model to serve.
        model_id: The name ``/info`` reports (default: the model's path).
        max_texts: The most texts (or contexts) one request may carry (413 beyond).
        max_chars: The most characters one request may carry, all texts together (413 beyond).
    """
    batcher = Batcher(model, max_documents=max(max_texts, 32))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="PruningEncoder",
        version=__version__,
        description="Rerank (text-embeddings-inference schema) and prune retrieved context.",
        lifespan=lifespan,
    )

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, error: ServiceError) -> JSONResponse:
        return JSONResponse({"error": error.message, "error_type": error.kind}, error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        # e.g. a body that is not UTF-8: FastAPI's own {"detail": ...} in our error shape
        return JSONResponse(
            {"error": str(error.detail), "error_type": "Validation"}, error.status_code
        )

    @app.exception_handler(Exception)
    async def internal_error(_: Request, error: Exception) -> JSONResponse:
        return JSONResponse(
            {"error": f"{type(error).__name__}: {error}", "error_type": "Internal"}, 500
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(_problem(e) for e in error.errors())
        return JSONResponse({"error": problems, "error_type": "Validation"}, 422)

    def check(texts: list[str], extra: str, what: str) -> None:
        if not texts:
            raise ServiceError(422, f"{what} must not be empty.")
        if len(texts) > max_texts:
            raise ServiceError(413, f"{len(texts)} {what}: at most {max_texts} per request.")
        chars = len(extra) + sum(len(t) for t in texts)
        if chars > max_chars:
            raise ServiceError(413, f"{chars} characters: at most {max_chars} per request.")

    def threshold_of(given: float | None) -> float:
        return float(model.config.default_threshold) if given is None else given

    @app.post("/rerank", response_model=list[Rank], response_model_exclude_none=True)
    async def rerank(request: RerankRequest) -> list[Rank]:
        """Texts sorted by relevance to the query, best first (TEI's schema)."""
        try:
            check_ranking_head(model.config, "/rerank")
        except ValueError as error:
            raise ServiceError(422, str(error)) from None
        check(request.texts, request.query, "texts")
        # Splitting and joining cost time in proportion to the text: keep them off the loop too.
        documents = await asyncio.to_thread(_documents, model, request.query, request.texts)
        logits, probabilities = await batcher.score(documents)
        assert logits is not None
        threshold = threshold_of(request.threshold)
        return await asyncio.to_thread(
            _ranks, model, request, documents, logits, probabilities, threshold
        )

    @app.post("/prune", response_model=PruneResponse, response_model_exclude_unset=True)
    async def prune(request: PruneRequest) -> PruneResponse:
        """Each context scored and pruned for the question, in input order, as ``process()``."""
        check(request.contexts, request.question, "contexts")
        documents = await asyncio.to_thread(_documents, model, request.question, request.contexts)
        logits, probabilities = await batcher.score(documents)
        threshold = threshold_of(request.threshold)
        return await asyncio.to_thread(
            _pruned, model, request, documents, logits, probabilities, threshold
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        """A page to try the model: question, contexts, highlighted results, threshold slider."""
        return service_page()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    async def info() -> dict[str, Any]:
        config = model.config
        return {
            "model_id": model_id or model.name_or_path,
            "model_type": "pruning_encoder",
            "mode": config.mode,
            "backend": model.backend,
            "precision": model.precision,
            "max_input_length": int(config.max_seq_length),
            "default_threshold": float(config.default_threshold),
            "max_client_batch_size": max_texts,
            "max_request_chars": max_chars,
            "version": __version__,
        }

    return app


def _documents(model: PruningEncoder, question: str, texts: list[str]) -> list[Document]:
    """The request's documents; a question too long for the model's window is refused here,
    before it joins a batch of other requests (413)."""
    tokens = len(model.tokenizer(question, add_special_tokens=False)["input_ids"])
    limit = model.model.question_token_limit
    try:
        check_question_tokens(tokens, limit=limit, max_length=model.max_length)
    except ValueError as error:
        raise ServiceError(413, str(error)) from None
    return [Document(question, text, split_sentences(text)) for text in texts]


def _ranks(
    model: PruningEncoder,
    request: RerankRequest,
    documents: list[Document],
    logits: np.ndarray,
    probabilities: list[np.ndarray],
    threshold: float,
) -> list[Rank]:
    activation = "identity" if request.raw_scores else model.config.ranking_activation
    scores = ranking_scores(logits, activation)
    pruned = (
        prune_group(
            model.tokenizer,
            documents,
            None,
            probabilities,
            threshold=threshold,
            always_select_title=False,
            max_tokens=request.max_tokens,
        )
        if request.prune
        else None
    )
    ranks = []
    for i in np.argsort(-scores, kind="stable"):
        rank = Rank(index=int(i), score=float(scores[i]))
        if request.return_text:
            rank.text = request.texts[i]
        if pruned is not None:
            rank.pruned_text = pruned[i]["pruned_context"]
            rank.highlighted = request.highlighted(pruned[i], request.texts[i])
        ranks.append(rank)
    return ranks


def _pruned(
    model: PruningEncoder,
    request: PruneRequest,
    documents: list[Document],
    logits: np.ndarray | None,
    probabilities: list[np.ndarray],
    threshold: float,
) -> PruneResponse:
    activation = model.config.ranking_activation
    scores = None if logits is None else ranking_scores(logits, activation).tolist()
    results = prune_group(
        model.tokenizer,
        documents,
        scores,
        probabilities,
        threshold=threshold,
        always_select_title=False,
        max_tokens=request.max_tokens,
        with_probabilities=request.return_sentence_probabilities,
        zero_score_when_empty=model.config.zero_score_when_empty,
    )
    if request.pre_tag is not None:
        for result, text in zip(results, request.contexts, strict=True):
            result["highlighted"] = request.highlighted(result, text)
    return PruneResponse(results=[PruneResult(**result) for result in results])
