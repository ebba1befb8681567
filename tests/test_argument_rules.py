"""One set of argument rules on every surface: Python, pipeline, CLI and service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from transformers import pipeline

from pruning_encoder import PruningEncoder
from pruning_encoder.cli import main
from pruning_encoder.server import create_app

DOCS = ["Paris is the capital of France.", "Cats purr.", "The dog barks."]


@pytest.mark.parametrize("top_k", [0, -1, True, 1.5])
def test_rank_and_process_refuse_the_same_top_k(tiny_model: PruningEncoder, top_k: object) -> None:
    with pytest.raises(ValueError, match="top_k must be a positive integer or None"):
        tiny_model.rank("q", DOCS, top_k=top_k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_k must be a positive integer or None"):
        tiny_model.process("q", DOCS, top_k=top_k)


def test_rank_top_k_keeps_exactly_k(tiny_model: PruningEncoder) -> None:
    assert len(tiny_model.rank("q", DOCS, top_k=2)) == 2
    assert len(tiny_model.rank("q", DOCS, top_k=10)) == 3


@pytest.mark.parametrize("threshold", [True, False, "0.3", [0.3]])
def test_a_threshold_must_be_a_number(tiny_model: PruningEncoder, threshold: object) -> None:
    with pytest.raises(TypeError, match=r"threshold must be a number in \[0, 1\]"):
        tiny_model.process("q", "Paris is big.", threshold=threshold)


def test_the_pipeline_follows_process_on_empty_and_incomplete_inputs(
    tiny_model: PruningEncoder,
) -> None:
    pruner = pipeline("context-pruning", model=tiny_model.model, tokenizer=tiny_model.tokenizer)
    assert pruner([]) == []
    assert tiny_model.process("q", []) == []
    with pytest.raises(ValueError, match="An input misses 'context'"):
        pruner({"question": "q"})
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        pruner({"question": "q", "context": DOCS}, top_k=0)


def test_rank_skips_whitespace_only_lines(
    tiny_backbone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    PruningEncoder(tiny_backbone, device="cpu").save_pretrained(tmp_path / "model")
    documents = tmp_path / "docs.txt"
    documents.write_text("Cats purr.\n   \n\t\nParis is big.\n")
    assert main(["rank", "--model", str(tmp_path / "model"), "--query", "q", str(documents)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert sorted(row.split("\t")[2] for row in rows) == ["Cats purr.", "Paris is big."]


def test_the_service_names_its_model_and_refuses_a_boolean_threshold(
    tiny_model: PruningEncoder,
) -> None:
    with TestClient(create_app(tiny_model)) as client:
        assert tiny_model.name_or_path
        assert client.get("/info").json()["model_id"] == tiny_model.name_or_path
        body = {"query": "q", "texts": ["Paris is big."], "prune": True, "threshold": True}
        response = client.post("/rerank", json=body)
        assert response.status_code == 422
        assert "threshold must be a number" in response.text
        body["threshold"] = 0.5
        assert client.post("/rerank", json=body).status_code == 200


# --- Text at the edges: a lone surrogate is refused by name on every surface ---------------------

LONE = "\udbc0"  # a high surrogate without its pair: text cut by UTF-16 length, or from a PDF


@pytest.mark.parametrize(
    ("question", "context", "options", "name"),
    [
        (
            "q",
            f"Paris{LONE} is big.",
            {},
            r"context holds a lone surrogate \(U\+DBC0\) at character 5:",
        ),
        (f"q{LONE}", "Paris is big.", {}, "question holds"),
        ("q", ["Paris.", f"Cats{LONE}."], {}, r"context\[1\] holds"),
        (["q", "q"], ["Paris.", f"Cats{LONE}."], {}, r"context\[1\] holds"),
        (["q", f"q{LONE}"], ["a", "b"], {}, r"question\[1\] holds"),
        (["q", "q"], [["a"], ["b", f"c{LONE}"]], {}, r"context\[1\]\[1\] holds"),
        ("q", [["Paris.", f"Cats{LONE}."]], {"presplit": True}, r"context\[0\]\[1\] holds"),
        ("q", "Paris.", {"title": f"T{LONE}"}, "title holds"),
    ],
)
def test_process_refuses_a_lone_surrogate_naming_the_field(
    tiny_model: PruningEncoder, question: object, context: object, options: dict, name: str
) -> None:
    with pytest.raises(ValueError, match=name):
        tiny_model.process(question, context, **options)  # type: ignore[arg-type]


def test_rank_and_predict_refuse_a_lone_surrogate_naming_the_field(
    tiny_model: PruningEncoder,
) -> None:
    with pytest.raises(ValueError, match=r"documents\[1\] holds a lone surrogate"):
        tiny_model.rank("q", ["Paris.", f"Cats{LONE}."])
    with pytest.raises(ValueError, match="query holds a lone surrogate"):
        tiny_model.rank(f"q{LONE}", DOCS)
    with pytest.raises(ValueError, match=r"inputs\[0\]\[1\] holds a lone surrogate"):
        tiny_model.predict([("q", f"Cats{LONE}.")])
    # A surrogate pair decoded from JSON is one code point, valid text.
    assert len(tiny_model.rank("q", [json.loads('"\\ud83d\\ude00 Paris."')])) == 1


def test_the_cli_refuses_a_lone_surrogate_with_an_error_line(
    tiny_backbone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    PruningEncoder(tiny_backbone, device="cpu").save_pretrained(model)
    context = tmp_path / "context.txt"
    context.write_text("Paris is big.")
    # Bytes that are not UTF-8 in an argument reach Python as surrogates (surrogateescape).
    argv = ["prune", "--model", str(model), "--question", f"q{LONE}", str(context)]
    assert main(argv) == 1
    assert "error: cannot prune: question holds a lone surrogate" in capsys.readouterr().err
    assert main(["rank", "--model", str(model), "--query", f"q{LONE}", str(context)]) == 1
    assert "error: cannot rank: query holds a lone surrogate" in capsys.readouterr().err
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        '{"question": "q", "context": "Paris is big."}\n'
        '{"question": "q", "context": "Cats\\udbc0 purr."}\n'
    )
    out = tmp_path / "out.jsonl"
    assert main(["prune", "--model", str(model), "--input", str(pairs), "--output", str(out)]) == 1
    assert f"{pairs}:2: field 'context' holds a lone surrogate" in capsys.readouterr().err
    assert [json.loads(line)["context"] for line in out.read_text().splitlines()] == [
        "Paris is big."
    ]


def test_the_service_answers_422_naming_the_field_with_a_lone_surrogate(
    tiny_model: PruningEncoder,
) -> None:
    headers = {"content-type": "application/json"}
    with TestClient(create_app(tiny_model)) as client:
        for route, body, field in [
            ("/rerank", '{"query": "q", "texts": ["Paris.", "Cats\\udbc0."]}', "texts.1"),
            ("/rerank", '{"query": "q\\udbc0", "texts": ["Paris."]}', "query"),
            ("/prune", '{"question": "q", "contexts": ["\\udbc0"]}', "contexts.0"),
            ("/prune", '{"question": "\\ud83d", "contexts": ["Paris."]}', "question"),
        ]:
            response = client.post(route, content=body.encode(), headers=headers)
            assert response.status_code == 422, response.text
            error = response.json()
            assert error["error_type"] == "Validation"
            assert error["error"].startswith(f"{field}: ")
            assert "lone surrogate" in error["error"]
        body = '{"query": "q", "texts": ["\\ud83d\\ude00 Paris."], "prune": true}'
        assert client.post("/rerank", content=body.encode(), headers=headers).status_code == 200


def test_rank_reads_one_document_per_newline_terminated_line(
    tiny_backbone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    PruningEncoder(tiny_backbone, device="cpu").save_pretrained(tmp_path / "model")
    documents = tmp_path / "docs.txt"
    lines = ["Cats\x0cpurr.", "Paris\u2028is big.", "Dogs\x85bark\rloudly.", "Rain\x1cfalls."]
    documents.write_bytes("\r\n".join(lines[:2]).encode() + b"\n" + "\n".join(lines[2:]).encode())
    argv = ["rank", "--model", str(tmp_path / "model"), "--query", "q", "--json", str(documents)]
    assert main(argv) == 0
    ranking = json.loads(capsys.readouterr().out)
    assert sorted(entry["text"] for entry in ranking) == sorted(lines)
