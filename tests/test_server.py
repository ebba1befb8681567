"""The HTTP service over real HTTP on loopback: schema, errors, and concurrency."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
import uvicorn

from pruning_encoder import PruningEncoder
from pruning_encoder.precision import native_bf16
from pruning_encoder.server import create_app

CONTEXTS = [
    "Paris is the capital of France. Cats purr.",
    "The dog is a dog. It was in the city.",
    "What is the capital? Paris is. The cat is.",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving(model: PruningEncoder, **limits: int) -> Iterator[str]:
    """``model``'s service on a free loopback port, in a thread; yields its base URL."""
    port = free_port()
    app = create_app(model, model_id="tiny", **limits)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def served(tiny_backbone: Path) -> Iterator[tuple[str, PruningEncoder]]:
    torch.manual_seed(0)
    model = PruningEncoder(tiny_backbone, device="cpu")
    with torch.no_grad():  # random heads barely vary their outputs: sharpen them
        model.model.backbone.classifier.weight.mul_(300)
        model.model.pruning_head.classifier.weight.mul_(30)
    with serving(model, max_texts=8, max_chars=2000) as base:
        yield base, model


def call(base: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_rerank_follows_the_tei_schema(served: tuple[str, PruningEncoder]) -> None:
    base, model = served
    status, ranks = call(base, "/rerank", {"query": "where is paris?", "texts": CONTEXTS})
    assert status == 200
    assert sorted(r["index"] for r in ranks) == [0, 1, 2]
    assert all(set(r) == {"index", "score"} for r in ranks)
    scores = [r["score"] for r in ranks]
    assert scores == sorted(scores, reverse=True)
    expected = model.predict([("where is paris?", c) for c in CONTEXTS])
    for rank in ranks:
        assert rank["score"] == pytest.approx(float(expected[rank["index"]]), abs=1e-5)

    body = {"query": "where is paris?", "texts": CONTEXTS, "raw_scores": True}
    body |= {"return_text": True, "prune": True, "threshold": 0.5}
    status, ranks = call(base, "/rerank", body)
    assert status == 200
    processed = model.process("where is paris?", CONTEXTS, threshold=0.5)
    logits = model.predict([("where is paris?", c) for c in CONTEXTS], activation_fn=lambda x: x)
    for rank in ranks:
        assert rank["text"] == CONTEXTS[rank["index"]]
        assert rank["pruned_text"] == processed[rank["index"]]["pruned_context"]
        assert rank["score"] == pytest.approx(float(logits[rank["index"]]), abs=1e-4)


def test_prune_matches_process(served: tuple[str, PruningEncoder]) -> None:
    base, model = served
    body = {"question": "where is the cat?", "contexts": CONTEXTS, "threshold": 0.5}
    status, response = call(base, "/prune", body)
    assert status == 200
    expected = model.process("where is the cat?", CONTEXTS, threshold=0.5)
    for got, want in zip(response["results"], expected, strict=True):
        assert got["pruned_context"] == want["pruned_context"]
        assert [tuple(s) for s in got["kept_spans"]] == want["kept_spans"]
        assert got["reranking_score"] == pytest.approx(want["reranking_score"], abs=1e-5)
        assert got["compression_rate"] == pytest.approx(want["compression_rate"])


def test_validation_errors_are_in_our_words(served: tuple[str, PruningEncoder]) -> None:
    base, _ = served
    status, body = call(base, "/prune", {"question": "q", "contexts": ["c"], "threshold": 2})
    assert (status, body["error"]) == (422, "threshold: threshold must be within [0, 1], got 2.")
    status, body = call(base, "/prune", raw=b'{"question": "q", "contexts": [')
    assert status == 422
    assert body["error"].startswith("body: not valid JSON at character ")


def test_health_info_and_openapi(served: tuple[str, PruningEncoder]) -> None:
    base, model = served
    assert call(base, "/health") == (200, {"status": "ok"})
    status, info = call(base, "/info")
    assert status == 200
    assert info["model_id"] == "tiny"
    assert info["backend"] == "torch"
    assert info["precision"] == model.precision
    assert info["max_client_batch_size"] == 8
    status, schema = call(base, "/openapi.json")
    assert status == 200
    assert {"/rerank", "/prune", "/health", "/info"} <= set(schema["paths"])


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/rerank", {"query": "q", "texts": []}, 422, "texts must not be empty"),
        ("/rerank", {"texts": ["a"]}, 422, "query"),
        ("/rerank", {"query": "q", "texts": "not a list"}, 422, "texts"),
        ("/rerank", {"query": "q", "texts": [1, 2]}, 422, "texts"),
        ("/rerank", {"query": "q", "texts": ["a"] * 9}, 413, "at most 8"),
        ("/rerank", {"query": "q", "texts": ["a" * 2001]}, 413, "characters"),
        ("/prune", {"question": "q", "contexts": ["a"], "threshold": 2}, 422, "threshold"),
        ("/prune", {"question": "q"}, 422, "contexts"),
    ],
)
def test_bad_requests_get_a_json_error(
    served: tuple[str, PruningEncoder], path: str, body: Any, status: int, message: str
) -> None:
    base, _ = served
    got, error = call(base, path, body)
    assert got == status
    assert message in error["error"]
    assert error["error_type"] == "Validation"


def test_malformed_json_is_422(served: tuple[str, PruningEncoder]) -> None:
    base, _ = served
    status, error = call(base, "/rerank", raw=b"{not json")
    assert status == 422
    assert "error" in error


def test_concurrent_requests_equal_sequential_ones(served: tuple[str, PruningEncoder]) -> None:
    base, _ = served
    bodies = [
        {"question": f"where is the {word}?", "contexts": CONTEXTS[: 1 + i % 3]}
        for i, word in enumerate(["cat", "dog", "city", "capital"] * 4)
    ]
    sequential = [call(base, "/prune", body) for body in bodies]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda body: call(base, "/prune", body), bodies))
    for (s_status, s_body), (c_status, c_body) in zip(sequential, concurrent, strict=True):
        assert s_status == c_status == 200
        for a, b in zip(s_body["results"], c_body["results"], strict=True):
            assert a["kept_spans"] == b["kept_spans"]
            assert a["reranking_score"] == pytest.approx(b["reranking_score"], abs=1e-5)


@pytest.mark.slow
def test_serve_command_applies_its_limits_and_stops_on_ctrl_c(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    PruningEncoder(tiny_backbone, device="cpu").save_pretrained(model_dir)
    port = free_port()
    command = [sys.executable, "-m", "pruning_encoder", "serve", "--model", str(model_dir)]
    command += ["--device", "cpu", "--port", str(port), "--max-texts", "2", "--max-chars", "100"]
    server = subprocess.Popen(
        command,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[0]
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if call(base, "/health")[0] == 200:
                    break
            except urllib.error.URLError:
                time.sleep(0.2)
        status, info = call(base, "/info")
        assert (status, info["model_id"], info["max_client_batch_size"]) == (200, str(model_dir), 2)
        # The service runs at the CPU's best precision without any flag.
        assert info["precision"] == ("bfloat16" if native_bf16("cpu") else "float32")
        status, ranks = call(base, "/rerank", {"query": "q", "texts": ["Cats purr.", "Paris."]})
        assert status == 200
        assert sorted(rank["index"] for rank in ranks) == [0, 1]
        assert call(base, "/rerank", {"query": "q", "texts": ["a", "b", "c"]})[0] == 413
        assert call(base, "/prune", {"question": "q", "contexts": ["a" * 101]})[0] == 413
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0]
    assert server.returncode == 0, output


def test_a_pruning_only_model_prunes_but_does_not_rerank(tiny_pruning_only: PruningEncoder) -> None:
    with serving(tiny_pruning_only) as base:
        status, error = call(base, "/rerank", {"query": "q", "texts": ["Cats purr."]})
        assert status == 422
        assert "pruning_only" in error["error"]
        status, body = call(base, "/prune", {"question": "q", "contexts": CONTEXTS})
    assert status == 200
    expected = tiny_pruning_only.process("q", CONTEXTS)
    assert [r["reranking_score"] for r in body["results"]] == [None] * len(CONTEXTS)
    assert [r["pruned_context"] for r in body["results"]] == [e["pruned_context"] for e in expected]
