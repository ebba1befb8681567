"""One set of argument rules on every surface: Python, pipeline, CLI and service."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from transformers import pipeline

from pruning_encoder import PruningEncoder, split_sentences
from pruning_encoder.cli import main
from pruning_encoder.context_pruning import Document
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


# --- Drifts settled: each rule from pruning_encoder.checks on every surface ----------------------


def test_a_boolean_default_threshold_is_refused_by_the_config_and_the_training_config(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    from pruning_encoder import PruningEncoderConfig
    from pruning_encoder.training.config import ConfigError, parse_train_config

    with pytest.raises(TypeError, match=r"default_threshold must be a number in \[0, 1\]"):
        PruningEncoderConfig(default_threshold=True)  # was read as 1.0
    with pytest.raises(TypeError, match=r"default_threshold must be a number in \[0, 1\]"):
        PruningEncoder(tiny_backbone, device="cpu", default_threshold=True)
    raw = {
        "model": {"base": str(tiny_backbone)},
        "data": {"train": "train.jsonl"},
        "training": {"output_dir": str(tmp_path / "run")},
        "threshold": False,  # was read as 0.0
    }
    with pytest.raises(ConfigError, match=r"threshold must be 'tune' or a number .* got False"):
        parse_train_config(raw)
    with pytest.raises(ConfigError, match=r"model\.mode: Unknown mode 'ranking'"):
        parse_train_config({**raw, "threshold": 0.5, "model": {**raw["model"], "mode": "ranking"}})


def test_the_integrations_and_the_html_report_refuse_a_boolean_threshold(
    tiny_model: PruningEncoder,
) -> None:
    from pydantic import ValidationError

    from pruning_encoder.integrations.haystack import PruningEncoderRanker
    from pruning_encoder.integrations.langchain import PruningEncoderCompressor
    from pruning_encoder.integrations.llama_index import PruningEncoderPostprocessor
    from pruning_encoder.web import html_report

    for surface in (PruningEncoderCompressor, PruningEncoderPostprocessor):
        # pydantic's own float and int fields read these as 1.0 and 1
        with pytest.raises(ValidationError, match="threshold must be a number in"):
            surface(model=tiny_model, threshold=True)
        with pytest.raises(ValidationError, match="batch_size must be a positive integer"):
            surface(model=tiny_model, batch_size=True)
        with pytest.raises(ValidationError, match="top_n must be a positive integer or None"):
            surface(model=tiny_model, top_n=0)
    with pytest.raises(TypeError, match="threshold must be a number in"):
        PruningEncoderRanker(model=tiny_model, threshold=True)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        PruningEncoderRanker(model=tiny_model, batch_size=0)
    with pytest.raises(TypeError, match="threshold must be a number in"):
        html_report(tiny_model, "q", ["Paris is big."], threshold=True)


@pytest.mark.parametrize("batch_size", [0, True, 2.5])
def test_process_predict_and_the_engines_refuse_the_same_batch_size(
    tiny_model: PruningEncoder, batch_size: object
) -> None:
    # True was read as 1 and 2.5 failed deep inside with an unrelated TypeError.
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        tiny_model.process("q", DOCS, batch_size=batch_size)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        tiny_model.rank("q", DOCS, batch_size=batch_size)  # type: ignore[arg-type]


def test_several_ranking_labels_are_refused_clearly_at_creation_load_and_scoring(
    tiny_backbone: Path,
) -> None:
    from transformers import BertConfig

    from pruning_encoder import PruningEncoderConfig, PruningEncoderModel
    from pruning_encoder.context_pruning import ranking_scores

    # process() read the last of two logits through a softmax, predict() returned both raw
    # logits, and rank() failed with a TypeError: now no such model is made.
    with pytest.raises(ValueError, match="num_labels=2, but a PruningEncoder's ranking head"):
        PruningEncoder(tiny_backbone, device="cpu", num_labels=2)
    encoder = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    assert encoder.num_labels == 2  # transformers' default
    config = PruningEncoderConfig(encoder_config=encoder, max_seq_length=64)
    config.name_or_path = "saved-model"  # as load_config sets it: what from_pretrained builds
    with pytest.raises(ValueError, match=r"^saved-model: num_labels=2, but"):
        PruningEncoderModel(config)
    with pytest.raises(ValueError, match=r"ranking logits of shape \(3, 2\): num_labels=2"):
        ranking_scores(np.zeros((3, 2), dtype=np.float32))
    assert PruningEncoderModel(PruningEncoderConfig(mode="pruning_only", encoder_config=encoder))


@pytest.mark.parametrize("activation", ["sigmoid", "identity"])
def test_process_predict_rank_and_the_service_give_one_score(
    tiny_model: PruningEncoder, activation: str
) -> None:
    tiny_model.config.ranking_activation = activation
    processed = [r["reranking_score"] for r in tiny_model.process("where is paris?", DOCS)]
    predicted = tiny_model.predict([("where is paris?", doc) for doc in DOCS])
    ranked = {e["corpus_id"]: e["score"] for e in tiny_model.rank("where is paris?", DOCS)}
    with TestClient(create_app(tiny_model)) as client:
        body = {"query": "where is paris?", "texts": DOCS}
        served = {r["index"]: r["score"] for r in client.post("/rerank", json=body).json()}
        pruned = client.post("/prune", json={"question": "where is paris?", "contexts": DOCS})
    assert predicted.dtype == np.float32
    assert processed == pytest.approx(list(predicted), abs=1e-6)
    assert processed == pytest.approx([ranked[i] for i in range(3)], abs=1e-6)
    assert processed == pytest.approx([served[i] for i in range(3)], abs=1e-6)
    assert processed == pytest.approx([r["reranking_score"] for r in pruned.json()["results"]])
    if activation == "identity":  # the raw logit, as naver's Provence reports it
        documents = [Document("where is paris?", d, split_sentences(d)) for d in DOCS]
        logits, _ = tiny_model.model.score_documents(documents)
        assert processed == pytest.approx(logits[:, 0].tolist(), abs=1e-6)
