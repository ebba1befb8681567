"""The ONNX backend gives the torch model's results: exact in fp32, within tolerances in int8."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from pruning_encoder import PruningEncoder
from pruning_encoder.onnx_backend import FP32_FILE, INT8_FILE

BENCHMARK_DATA = Path(__file__).parents[1] / "benchmarks" / "wiki_contexts.json"
CONTEXTS = [
    "Paris is the capital of France. The cat is in the city. It was a dog.",
    "",
    " ".join(f"Sentence {i} is about the cat." for i in range(40)),  # several windows
    "What is the capital? Paris.",
]


@pytest.fixture(scope="module")
def exported(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    torch.manual_seed(0)
    model = PruningEncoder(tiny_backbone, device="cpu", dtype="float32")
    with torch.no_grad():  # random heads barely vary their outputs: sharpen them
        model.model.backbone.classifier.weight.mul_(300)
        model.model.pruning_head.classifier.weight.mul_(30)
    directory = tmp_path_factory.mktemp("onnx") / "tiny-onnx"
    model.export_onnx(directory)
    return model, directory


def assert_same_results(want: list[dict], got: list[dict], *, atol: float) -> None:
    for a, b in zip(want, got, strict=True):
        assert b["kept_spans"] == a["kept_spans"]
        assert b["pruned_context"] == a["pruned_context"]
        assert b["reranking_score"] == pytest.approx(a["reranking_score"], abs=atol)
        assert b["sentence_probabilities"] == pytest.approx(a["sentence_probabilities"], abs=atol)


def test_export_writes_a_loadable_model_and_both_graphs(exported: tuple) -> None:
    _, directory = exported
    assert (directory / "config.json").is_file()
    assert PruningEncoder(directory).backend == "torch"
    for file_name in (FP32_FILE, INT8_FILE):
        graph = onnx.load(str(directory / file_name))
        assert [i.name for i in graph.graph.input] == [
            "input_ids",
            "attention_mask",
            "token_type_ids",
        ]
        assert [o.name for o in graph.graph.output] == ["ranking_logits", "pruning_logits"]
    fp32_ops, int8_ops = (
        Counter(node.op_type for node in onnx.load(str(directory / name)).graph.node)
        for name in (FP32_FILE, INT8_FILE)
    )
    # fp32: query, key and value packed into one Attention node per layer; int8: apart, and
    # quantised like the attention output and feed-forward up-projection (5 per layer, plus the
    # heads).
    layers = fp32_ops["Attention"]
    assert layers > 0 and fp32_ops["MultiHeadAttention"] == 0
    assert int8_ops["MultiHeadAttention"] == layers and int8_ops["Attention"] == 0
    assert int8_ops["MatMulInteger"] >= 5 * layers


def test_fp32_onnx_process_matches_torch(exported: tuple) -> None:
    model, directory = exported
    fast = PruningEncoder(directory, backend="onnx")
    assert fast.backend == "onnx"
    options = {"threshold": 0.5, "return_sentence_probabilities": True, "batch_size": 3}
    want = model.process("where is the cat?", CONTEXTS, **options)
    got = fast.process("where is the cat?", CONTEXTS, **options)
    assert_same_results(want, got, atol=1e-4)
    nested = [["paris is a city.", "the dog. cats purr."], ["cats purr. dogs bark."]]
    want_nested = model.process(["q1", "q2"], nested, reorder=True)
    got_nested = fast.process(["q1", "q2"], nested, reorder=True)
    for a, b in zip(want_nested, got_nested, strict=True):
        assert [r["index"] for r in b] == [r["index"] for r in a]
        assert [r["kept_spans"] for r in b] == [r["kept_spans"] for r in a]


def test_fp32_onnx_predict_and_rank_match_torch(exported: tuple) -> None:
    model, directory = exported
    fast = PruningEncoder(directory, backend="onnx")
    pairs = [("where is paris?", c) for c in CONTEXTS]
    np.testing.assert_allclose(fast.predict(pairs), model.predict(pairs), atol=1e-5)
    want = model.rank("paris", CONTEXTS)
    got = fast.rank("paris", CONTEXTS)
    assert [r["corpus_id"] for r in got] == [r["corpus_id"] for r in want]


def test_int8_onnx_runs_the_same_api(exported: tuple) -> None:
    model, directory = exported
    fast = PruningEncoder(directory, backend="onnx", file_name=INT8_FILE)
    results = fast.process("where is the cat?", CONTEXTS, return_sentence_probabilities=True)
    reference = model.process("where is the cat?", CONTEXTS, return_sentence_probabilities=True)
    for a, b in zip(reference, results, strict=True):
        assert len(b["sentence_probabilities"]) == len(a["sentence_probabilities"])
        assert b["reranking_score"] == pytest.approx(a["reranking_score"], abs=0.1)


def test_int8_results_do_not_depend_on_the_batch(exported: tuple) -> None:
    """Activations are quantised per token, so a document gets the same result alone, in a
    batch and padded among long documents (dynamic per-tensor scales moved them by ~5e-3)."""
    _, directory = exported
    fast = PruningEncoder(directory, backend="onnx", file_name=INT8_FILE)
    assert fast.precision == "int8"
    assert PruningEncoder(directory, backend="onnx").precision == "float32"
    question, document = "where is the cat?", CONTEXTS[0]
    options = {"threshold": 0.5, "return_sentence_probabilities": True}
    alone = fast.process(question, document, **options)
    in_batch = fast.process(question, [document, CONTEXTS[3], "Dogs bark."], **options)[0]
    long = " ".join(f"Sentence {i} is about a city far away." for i in range(60))
    padded = fast.process(question, [long, document, long], batch_size=3, **options)[1]
    for other in (in_batch, padded):
        assert other["kept_spans"] == alone["kept_spans"]
        assert other["reranking_score"] == pytest.approx(alone["reranking_score"], abs=1e-5)
        assert other["sentence_probabilities"] == pytest.approx(
            alone["sentence_probabilities"], abs=1e-5
        )
    ops = Counter(node.op_type for node in onnx.load(str(directory / INT8_FILE)).graph.node)
    assert ops["DynamicQuantizeLinear"] == 0


def test_pruning_only_exports_one_output(tiny_pruning_only: PruningEncoder, tmp_path: Path) -> None:
    tiny_pruning_only.export_onnx(tmp_path / "p", quantize=False)
    assert not (tmp_path / "p" / INT8_FILE).exists()
    graph = onnx.load(str(tmp_path / "p" / FP32_FILE))
    assert [o.name for o in graph.graph.output] == ["pruning_logits"]
    fast = PruningEncoder(tmp_path / "p", backend="onnx")
    want = tiny_pruning_only.process("q", CONTEXTS, threshold=0.5)
    got = fast.process("q", CONTEXTS, threshold=0.5)
    assert [r["kept_spans"] for r in got] == [r["kept_spans"] for r in want]
    assert all(r["reranking_score"] is None for r in got)


def test_failed_export_leaves_nothing(
    tiny_model: PruningEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("quantiser crashed")

    monkeypatch.setattr("pruning_encoder.onnx_backend._quantize", broken)
    with pytest.raises(RuntimeError, match="quantiser crashed"):
        tiny_model.export_onnx(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_onnx_backend_errors(exported: tuple, tiny_backbone: Path, tmp_path: Path) -> None:
    model, directory = exported
    model.save_pretrained(tmp_path / "torch-only")
    with pytest.raises(FileNotFoundError, match="export --onnx"):
        PruningEncoder(tmp_path / "torch-only", backend="onnx")
    with pytest.raises(ValueError, match="Unknown backend"):
        PruningEncoder(directory, backend="tensorrt")
    with pytest.raises(ValueError, match="runs on CPU"):
        PruningEncoder(directory, backend="onnx", device="cuda")
    with pytest.raises(ValueError, match="export it first"):
        PruningEncoder("minilm-l6-wiki", backend="onnx")
    fast = PruningEncoder(directory, backend="onnx")
    with pytest.raises(ValueError, match="needs the torch backend"):
        fast.save_pretrained(tmp_path / "again")
    with pytest.raises(ValueError, match="needs the torch backend"):
        fast.export_onnx(tmp_path / "again")


def benchmark_pairs(count: int) -> list[tuple[str, str]]:
    data = json.loads(BENCHMARK_DATA.read_text(encoding="utf-8"))
    pairs = []
    for entry in data["questions"][:count]:
        for index in entry["summaries"][:3]:
            pairs.append((entry["question"], data["summaries"][index]))
    return pairs


@pytest.mark.slow
def test_int8_minilm_meets_the_agreement_targets(tmp_path: Path) -> None:
    """The bundled model's int8 graph against torch fp32: ranking-score Pearson ≥ 0.99 and the
    same keep decision on ≥ 98% of sentences at the default threshold, outside a margin around it.

    int8 rounding moves a small keep-probability by up to about a factor of 2 (measured here and
    on an AVX-512/VNNI CPU), so a sentence whose fp32 probability lies within a factor of 2 of the
    threshold may go either way on some CPU and is left out; at least 300 of the ~400 sentences
    remain. The factor applies to the head's own probabilities: the comparison is made before the
    bundled model's keep calibration, at the threshold that calibration maps to its default."""
    model = PruningEncoder("minilm-l6-wiki", device="cpu", dtype="float32")
    model.export_onnx(tmp_path / "minilm")
    fast = PruningEncoder(tmp_path / "minilm", backend="onnx", file_name=INT8_FILE)
    calibration = model.config.keep_calibration
    assert calibration is not None and calibration["method"] == "platt"
    assert fast.config.keep_calibration == calibration
    logit = np.log(model.config.default_threshold / (1 - model.config.default_threshold))
    threshold = 1 / (1 + np.exp(-(logit - calibration["b"]) / calibration["a"]))
    model.config.keep_calibration = fast.config.keep_calibration = None
    pairs = benchmark_pairs(16)
    questions, contexts = [q for q, _ in pairs], [c for _, c in pairs]
    want = model.process(questions, contexts, return_sentence_probabilities=True)
    got = fast.process(questions, contexts, return_sentence_probabilities=True)
    scores = [[r["reranking_score"] for r in results] for results in (want, got)]
    assert np.corrcoef(*scores)[0, 1] >= 0.99
    fp32, int8 = (
        np.concatenate([r["sentence_probabilities"] for r in results]) for results in (want, got)
    )
    clear = np.abs(np.log(np.clip(fp32, 1e-12, 1.0) / threshold)) > np.log(2.0)
    assert clear.sum() >= 300
    assert np.mean((fp32 > threshold)[clear] == (int8 > threshold)[clear]) >= 0.98
