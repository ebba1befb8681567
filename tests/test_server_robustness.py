"""One bad request never breaks others: validation before batching, retries, JSON errors."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
from test_server import call, serving

from pruning_encoder import PruningEncoder
from pruning_encoder.server import Batcher, _documents

GOOD = {"query": "where is paris?", "texts": ["Paris is in France. Cats purr.", "The dog."]}


@pytest.fixture(scope="module")
def model(tiny_backbone: Path) -> PruningEncoder:
    torch.manual_seed(0)
    return PruningEncoder(tiny_backbone, device="cpu")


def test_a_question_too_long_for_the_window_is_a_413_naming_the_limit(
    model: PruningEncoder,
) -> None:
    long_question = " ".join(["paris"] * 300)
    limit = model.model.question_token_limit
    assert 0 < limit < 300
    with serving(model) as base:
        status, body = call(base, "/rerank", {"query": long_question, "texts": ["Paris."]})
        assert status == 413
        assert f"at most {limit} fit" in body["error"]
        status, body = call(base, "/prune", {"question": long_question, "contexts": ["Paris."]})
        assert status == 413 and body["error_type"] == "Validation"


def test_a_failing_batch_is_retried_request_by_request(
    model: PruningEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    score = model.model.score_documents

    def fragile(documents: list[Any], **options: Any) -> Any:
        if any(d.question == "boom" for d in documents):
            raise RuntimeError("boom")
        return score(documents, **options)

    monkeypatch.setattr(model.model, "score_documents", fragile)

    async def run() -> list[Any]:
        batcher = Batcher(model, max_documents=64)
        jobs = [
            batcher.score(_documents(model, q, ["Paris is in France."]))
            for q in ("paris?", "boom", "cats?")
        ]
        batcher.start()  # all three are queued: they form one batch
        try:
            return await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            await batcher.stop()

    good, bad, other = asyncio.run(run())
    assert isinstance(bad, RuntimeError)
    expected = score(_documents(model, "paris?", ["Paris is in France."]))
    assert torch.allclose(torch.as_tensor(good[0]), torch.as_tensor(expected[0]))
    assert not isinstance(other, Exception)


@pytest.mark.parametrize("batch_fails", [False, True])
def test_a_request_cancelled_mid_batch_never_stops_the_batcher(
    model: PruningEncoder, monkeypatch: pytest.MonkeyPatch, batch_fails: bool
) -> None:
    score = model.model.score_documents
    running, release = threading.Event(), threading.Event()

    def held(documents: list[Any], **options: Any) -> Any:
        if not running.is_set():  # the first batch: wait until its first request is cancelled
            running.set()
            assert release.wait(timeout=60)
            if batch_fails:
                raise RuntimeError("boom")  # the batch is then retried request by request
        return score(documents, **options)

    monkeypatch.setattr(model.model, "score_documents", held)
    documents = _documents(model, "paris?", ["Paris is in France. Cats purr."])

    async def run() -> tuple[list[Any], bool]:
        batcher = Batcher(model, max_documents=64)
        cancelled = asyncio.ensure_future(batcher.score(documents))
        other = asyncio.ensure_future(batcher.score(documents))
        await asyncio.sleep(0)  # both queued: they form one batch
        batcher.start()
        assert await asyncio.to_thread(running.wait, 60)
        cancelled.cancel()
        release.set()
        # (A batcher that died leaves these unanswered: wait_for fails the test, not hangs it.)
        answered = await asyncio.wait_for(other, 60)
        later = await asyncio.wait_for(
            asyncio.gather(*(batcher.score(documents) for _ in range(3))), 60
        )
        waiting = asyncio.ensure_future(batcher.score(documents))
        await batcher.stop()  # returns; a request still waiting is cancelled, not left hanging
        await asyncio.gather(waiting, return_exceptions=True)
        return [*later, answered], cancelled.cancelled() and waiting.cancelled()

    results, cancelled = asyncio.run(run())
    expected = score(documents)
    for logits, probabilities in results:
        assert torch.allclose(torch.as_tensor(logits), torch.as_tensor(expected[0]), atol=1e-5)
        assert len(probabilities) == 1
    assert cancelled


def fuzz_bodies(rng: random.Random, count: int) -> list[bytes]:
    values: list[Any] = [None, True, 3, -1.5, "", "x" * 50, [], [1, 2], {}, {"a": 1}, ["ok", 2]]
    bodies = [b"", b"{", b"[]", b"null", b'{"query": "q", "texts": ["a"]', "é".encode("latin-1")]
    for _ in range(count):
        body: dict[str, Any] = {}
        for key in ("query", "texts", "question", "contexts", "threshold", "prune", "raw_scores"):
            if rng.random() < 0.6:
                body[key] = rng.choice([*values, GOOD["query"], GOOD["texts"]])
        bodies.append(json.dumps(body).encode())
    return bodies


def test_fuzzed_requests_never_get_a_500_and_good_ones_are_unaffected(
    model: PruningEncoder,
) -> None:
    rng = random.Random(0)
    bodies = fuzz_bodies(rng, 60)
    with serving(model, max_texts=4, max_chars=500) as base:
        expected = call(base, "/rerank", GOOD)
        assert expected[0] == 200
        requests = [("/rerank" if i % 2 else "/prune", body) for i, body in enumerate(bodies)]
        requests += [("/rerank", json.dumps(GOOD).encode())] * 12
        rng.shuffle(requests)
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda r: (r, call(base, r[0], raw=r[1])), requests))
    for (path, body), (status, reply) in answers:
        assert status != 500, (path, body, reply)
        if status != 200:
            assert set(reply) == {"error", "error_type"}, (path, body, reply)
        elif body == json.dumps(GOOD).encode() and path == "/rerank":
            # Batched with other requests (more padding): the same ranking, scores to 1e-5.
            assert [r["index"] for r in reply] == [r["index"] for r in expected[1]]
            for got, want in zip(reply, expected[1], strict=True):
                assert got["score"] == pytest.approx(want["score"], abs=1e-5)
