"""Inference precision: dtype="auto" (the default), converted bf16 / fp16 weights, --dtype;
agreement with float32."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import pruning_encoder.precision as precision_module
from pruning_encoder import PruningEncoder
from pruning_encoder.cli import main
from pruning_encoder.precision import native_bf16

ROOT = Path(__file__).parents[1]
CONTEXT = "The Eiffel Tower is in Paris. It was finished in 1889. Cats purr loudly at night."


@pytest.mark.parametrize("dtype", ["bfloat16", "auto"])
def test_a_pruning_only_model_runs_in_reduced_precision(
    tiny_pruning_only: PruningEncoder, tmp_path: Path, native: list[torch.device], dtype: str
) -> None:
    tiny_pruning_only.save_pretrained(tmp_path / "model")
    reference = PruningEncoder(tmp_path / "model", device="cpu", dtype="float32")
    model = PruningEncoder(tmp_path / "model", device="cpu", dtype=dtype)
    assert model.precision == "bfloat16"
    options = {"threshold": 0.0, "return_sentence_probabilities": True}
    got = model.process("Where is it?", CONTEXT, **options)
    want = reference.process("Where is it?", CONTEXT, **options)
    assert got["sentence_probabilities"] == pytest.approx(want["sentence_probabilities"], abs=0.02)
    assert got["sentence_probabilities"] != want["sentence_probabilities"]


@pytest.mark.parametrize("dtype", ["bfloat16", "bf16", torch.bfloat16, "float16"])
def test_the_encoder_runs_in_the_dtype_and_the_heads_in_float32(
    tiny_model: PruningEncoder, tmp_path: Path, dtype: str | torch.dtype
) -> None:
    tiny_model.save_pretrained(tmp_path / "model")
    model = PruningEncoder(tmp_path / "model", device="cpu", dtype=dtype)
    inner = model.model
    assert {p.dtype for p in inner.backbone.base_model.parameters()} == {  # type: ignore[union-attr]
        torch.bfloat16 if dtype != "float16" else torch.float16
    }
    heads = [inner.pruning_head, inner.backbone.classifier]  # type: ignore[union-attr]
    assert {p.dtype for head in heads for p in head.parameters()} == {torch.float32}
    reference = PruningEncoder(tmp_path / "model", device="cpu")
    got = model.process("Where is it?", CONTEXT, threshold=0.0, return_sentence_probabilities=True)
    want = reference.process(
        "Where is it?", CONTEXT, threshold=0.0, return_sentence_probabilities=True
    )
    assert got["pruned_context"] == want["pruned_context"] == CONTEXT
    assert got["reranking_score"] == pytest.approx(want["reranking_score"], abs=0.02)
    assert got["sentence_probabilities"] == pytest.approx(want["sentence_probabilities"], abs=0.02)


@pytest.fixture
def native(monkeypatch: pytest.MonkeyPatch) -> list[torch.device]:
    """Pretend the device multiplies bf16 natively; records the devices asked about."""
    asked: list[torch.device] = []

    def probe(device: torch.device) -> bool:
        asked.append(torch.device(device))
        return True

    monkeypatch.setattr(precision_module, "native_bf16", probe)
    return asked


@pytest.mark.parametrize("native_bf16", [True, False])
@pytest.mark.parametrize("dtype", ["auto", None, "default"])
def test_auto_runs_bfloat16_only_where_the_device_has_it_natively(
    tiny_model: PruningEncoder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    native_bf16: bool,
    dtype: str | None,
) -> None:
    tiny_model.save_pretrained(tmp_path / "model")
    asked: list[torch.device] = []

    def probe(device: torch.device) -> bool:
        asked.append(torch.device(device))
        return native_bf16

    monkeypatch.setattr(precision_module, "native_bf16", probe)
    options = {} if dtype == "default" else {"dtype": dtype}
    model = PruningEncoder(tmp_path / "model", device="cpu", **options)
    assert asked == [torch.device("cpu")]
    assert model.precision == ("bfloat16" if native_bf16 else "float32")
    assert f"precision={model.precision}" in repr(model)
    inner = model.model
    # The weights stay float32 either way: only inference runs in bf16.
    assert {p.dtype for p in inner.parameters()} == {torch.float32}  # type: ignore[union-attr]
    reference = PruningEncoder(tmp_path / "model", device="cpu", dtype="float32")
    options = {"threshold": 0.0, "return_sentence_probabilities": True}
    got = model.process("Where is it?", CONTEXT, **options)
    want = reference.process("Where is it?", CONTEXT, **options)
    assert got["pruned_context"] == want["pruned_context"] == CONTEXT
    tolerance = 0.02 if native_bf16 else 1e-6
    assert got["reranking_score"] == pytest.approx(want["reranking_score"], abs=tolerance)
    assert got["sentence_probabilities"] == pytest.approx(
        want["sentence_probabilities"], abs=tolerance
    )
    if native_bf16:  # what ran was the bf16 copy, not the float32 weights
        assert got["reranking_score"] != want["reranking_score"]


def test_auto_in_bf16_saves_exports_and_trains_as_float32(
    tiny_model: PruningEncoder, tmp_path: Path, native: list[torch.device]
) -> None:
    tiny_model.save_pretrained(tmp_path / "model")
    model = PruningEncoder(tmp_path / "model", device="cpu")
    assert model.precision == "bfloat16"
    model.process("Where is it?", CONTEXT)  # makes the bf16 copy
    model.save_pretrained(tmp_path / "saved")
    saved = PruningEncoder(tmp_path / "saved", device="cpu", dtype="float32")
    for (name, a), b in zip(
        tiny_model.model.state_dict().items(), saved.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    model.export_onnx(tmp_path / "onnx", quantize=False)
    assert (tmp_path / "onnx" / "onnx" / "model.onnx").is_file()
    # A training step changes the float32 weights in place; inference follows them.
    before = model.process("Where is it?", CONTEXT, return_sentence_probabilities=True)
    optimizer = torch.optim.SGD(model.model.parameters(), lr=1.0)
    batch = model.tokenizer(["Where is it?"], [CONTEXT], return_tensors="pt")
    model.train()
    output = model.model(**batch, labels=torch.tensor([1.0]))
    output.loss.backward()
    optimizer.step()
    model.eval()
    after = model.process("Where is it?", CONTEXT, return_sentence_probabilities=True)
    model.save_pretrained(tmp_path / "trained")
    trained = PruningEncoder(tmp_path / "trained", device="cpu", dtype="float32")
    want = trained.process("Where is it?", CONTEXT, return_sentence_probabilities=True)
    assert after["reranking_score"] != before["reranking_score"]
    assert after["reranking_score"] == pytest.approx(want["reranking_score"], abs=0.02)
    assert after["sentence_probabilities"] == pytest.approx(
        want["sentence_probabilities"], abs=0.02
    )


def test_native_bf16_answers_for_any_device() -> None:
    assert isinstance(native_bf16("cpu"), bool)
    assert native_bf16("meta") is False
    if not torch.cuda.is_available():
        assert native_bf16("cuda") is False


@pytest.mark.parametrize("dtype", ["auto", None])
def test_auto_leaves_an_onnx_graph_as_it_is(
    tmp_path: Path, native: list[torch.device], dtype: str | None
) -> None:
    # An empty folder: refused for what it holds, past the dtype check that bf16 would fail.
    with pytest.raises(ValueError, match=r"holds no config\.json"):
        PruningEncoder(tmp_path, backend="onnx", dtype=dtype)


def test_a_reduced_precision_model_is_not_saved_or_trained(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    model = PruningEncoder(tiny_backbone, device="cpu", dtype="bfloat16")
    for write in (model.save_pretrained, model.export_onnx, model.export_ranking_model):
        with pytest.raises(ValueError, match=r"needs float32 weights.*dtype='auto'"):
            write(tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("dtype", ["int8", "half", torch.int8, 16])
def test_an_unknown_dtype_is_refused(tiny_backbone: Path, dtype: object) -> None:
    with pytest.raises(ValueError, match="dtype must be one of float32, fp32, bfloat16"):
        PruningEncoder(tiny_backbone, device="cpu", dtype=dtype)  # type: ignore[arg-type]


def test_the_onnx_backend_takes_no_dtype(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dtype= is for the torch backend"):
        PruningEncoder(tmp_path, backend="onnx", dtype="bfloat16")


def test_cli_dtype(tiny_model: PruningEncoder, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    tiny_model.save_pretrained(tmp_path / "model")
    (tmp_path / "context.txt").write_text(CONTEXT)
    args = ["prune", "--model", str(tmp_path / "model"), "--device", "cpu", "--json"]
    question = ["--question", "Where is it?", str(tmp_path / "context.txt"), "--threshold", "0"]
    assert main([*args, "--dtype", "bfloat16", *question]) == 0
    assert json.loads(capsys.readouterr().out)["pruned_context"] == CONTEXT
    assert main([*args, "--dtype", "auto", *question]) == 0
    assert json.loads(capsys.readouterr().out)["pruned_context"] == CONTEXT
    assert main([*args, "--dtype", "float32", *question]) == 0
    assert json.loads(capsys.readouterr().out)["pruned_context"] == CONTEXT
    assert main([*args, "--dtype", "int8", *question]) == 2
    assert "invalid choice: 'int8'" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", ["auto", "bfloat16"])
def test_bf16_minilm_agrees_with_float32(native: list[torch.device], dtype: str) -> None:
    """The bundled model in bf16 (the default where native, and converted weights) against
    float32: ranking-score Pearson ≥ 0.999 and the same keep decision on ≥ 99% of the sentences
    whose float32 probability is not within a factor of 2 of the threshold. (bf16 is emulated on
    CPUs without avx512_bf16, so this runs slowly there, on few pairs; measured: Pearson 0.99999
    and every decision outside the margin the same, on an AVX2 and on an AMX CPU.)"""
    data = json.loads((ROOT / "benchmarks" / "wiki_contexts.json").read_text(encoding="utf-8"))
    pairs = [
        (e["question"], data["summaries"][i])
        for e in data["questions"][:6]
        for i in e["summaries"][:3]
    ]
    questions, contexts = [q for q, _ in pairs], [c for _, c in pairs]
    fp32 = PruningEncoder("minilm-l6-wiki", device="cpu", dtype="float32")
    bf16 = PruningEncoder("minilm-l6-wiki", device="cpu", dtype=dtype)
    assert bf16.precision == "bfloat16"
    want = fp32.process(questions, contexts, return_sentence_probabilities=True)
    got = bf16.process(questions, contexts, return_sentence_probabilities=True)
    scores = [[r["reranking_score"] for r in results] for results in (want, got)]
    assert np.corrcoef(*scores)[0, 1] >= 0.999
    threshold = fp32.config.default_threshold
    a, b = (np.concatenate([r["sentence_probabilities"] for r in rs]) for rs in (want, got))
    clear = np.abs(np.log(np.clip(a, 1e-12, 1.0) / threshold)) > np.log(2.0)
    assert clear.sum() >= 50
    assert np.mean((a > threshold)[clear] == (b > threshold)[clear]) >= 0.99
