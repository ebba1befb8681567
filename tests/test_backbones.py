"""The backbone matrix: every supported encoder family through every path, each with a tokenizer of
its own kind (see ``tiny_backbones``), so that special-token templates are exercised for real."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tiny_backbones import BACKBONES, make_backbone
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    pipeline,
)

from pruning_encoder import PruningEncoder
from pruning_encoder.training.trainer import PruningEncoderTrainer
from pruning_encoder.training.training_args import PruningEncoderTrainingArguments

QUESTION = "where is the cat?"
SHORT = "The cat is in Paris. Dogs bark at night."
# Longer than one 128-token window with any of the tiny tokenizers.
LONG = " ".join(f"Cats sleep most of the day in Paris number {i}." for i in range(20))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[PruningEncoder, Path]]:
    """Each backbone's new PruningEncoder and the folder it was saved to."""
    root = tmp_path_factory.mktemp("backbones")
    built = {}
    for kind in BACKBONES:
        torch.manual_seed(0)
        model = PruningEncoder(make_backbone(kind, root / kind), device="cpu")
        model.save_pretrained(root / f"{kind}-saved")
        built[kind] = (model, root / f"{kind}-saved")
    return built


def _same(result: dict, expected: dict) -> None:
    assert result["kept_spans"] == expected["kept_spans"]
    assert result["reranking_score"] == pytest.approx(expected["reranking_score"], abs=1e-5)


@pytest.mark.parametrize("kind", BACKBONES)
def test_process_feeds_the_tokenizers_own_pair_template(
    kind: str, models: dict[str, tuple[PruningEncoder, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _ = models[kind]
    seen: list[list[int]] = []
    heads = model.model._heads

    def spy(**inputs: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        seen.extend(inputs["input_ids"].tolist())
        return heads(**inputs)

    monkeypatch.setattr(model.model, "_heads", spy)
    result = model.process(QUESTION, SHORT, threshold=0)
    assert result["pruned_context"] == SHORT
    expected = model.tokenizer(QUESTION, SHORT)["input_ids"]
    assert seen == [expected]
    if kind == "modernbert-bare":  # the bare tokenizer was given [CLS] q [SEP] c [SEP]
        assert expected[0] == model.tokenizer.cls_token_id
    long = model.process(QUESTION, LONG, threshold=0, return_sentence_probabilities=True)
    assert long["pruned_context"] == LONG
    assert len(long["sentence_probabilities"]) == 20
    assert len(seen) > 2  # the long context took several windows


@pytest.mark.parametrize("kind", BACKBONES)
def test_save_load_and_the_auto_classes(
    kind: str, models: dict[str, tuple[PruningEncoder, Path]]
) -> None:
    model, saved = models[kind]
    expected = model.process(QUESTION, LONG)
    _same(PruningEncoder.from_pretrained(saved, device="cpu").process(QUESTION, LONG), expected)
    _same(AutoModel.from_pretrained(saved).process(QUESTION, LONG), expected)
    inputs = model.tokenizer(QUESTION, SHORT, return_tensors="pt")
    with torch.inference_mode():
        reference = model(**inputs)
        ranking = AutoModelForSequenceClassification.from_pretrained(saved)(**inputs).logits
        pruning = AutoModelForTokenClassification.from_pretrained(saved)(**inputs).logits
    torch.testing.assert_close(ranking, reference.ranking_logits)
    torch.testing.assert_close(pruning, reference.pruning_logits)


@pytest.mark.parametrize("kind", BACKBONES)
def test_the_ranking_model_loads_in_cross_encoder_and_pipeline(
    kind: str, models: dict[str, tuple[PruningEncoder, Path]]
) -> None:
    from sentence_transformers import CrossEncoder

    model, saved = models[kind]
    score = float(model.predict((QUESTION, SHORT)))
    ranking_dir = str(saved / "ranking_model")
    cross_encoder = CrossEncoder(ranking_dir, device="cpu")
    assert float(cross_encoder.predict([(QUESTION, SHORT)])[0]) == pytest.approx(score, abs=1e-5)
    classifier = pipeline("text-classification", model=ranking_dir, device="cpu")
    assert classifier({"text": QUESTION, "text_pair": SHORT})["score"] == pytest.approx(
        score, abs=1e-5
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", BACKBONES)
def test_onnx_export_runs_like_torch(
    kind: str, models: dict[str, tuple[PruningEncoder, Path]], tmp_path: Path
) -> None:
    model, _ = models[kind]
    model.export_onnx(tmp_path / "onnx", quantize=False)
    onnx = PruningEncoder(tmp_path / "onnx", backend="onnx")
    expected = model.process(QUESTION, LONG, return_sentence_probabilities=True)
    result = onnx.process(QUESTION, LONG, return_sentence_probabilities=True)
    assert result["reranking_score"] == pytest.approx(expected["reranking_score"], abs=1e-4)
    assert result["sentence_probabilities"] == pytest.approx(
        expected["sentence_probabilities"], abs=1e-4
    )


@pytest.mark.parametrize("kind", BACKBONES)
def test_one_training_step_moves_both_heads(
    kind: str, models: dict[str, tuple[PruningEncoder, Path]], tmp_path: Path
) -> None:
    from pruning_encoder.data.records import Record

    model = PruningEncoder.from_pretrained(models[kind][1], device="cpu")
    before = {k: v.clone() for k, v in model.model.named_parameters() if "classifier" in k}
    relevant = "The cat is in Paris."
    records = [Record(QUESTION, [SHORT, LONG], [[(0, len(relevant))], []], [1.0, 0.0])] * 2
    arguments = PruningEncoderTrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        max_steps=1,
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = PruningEncoderTrainer(model, arguments, train_dataset=records)
    loss = trainer.train().training_loss
    assert loss == pytest.approx(loss) and loss > 0  # finite and positive
    after = dict(model.model.named_parameters())
    moved = [k for k, v in before.items() if not torch.equal(v, after[k])]
    assert any(k.startswith("pruning_head.") for k in moved)
    assert any(k.startswith("backbone.") for k in moved)  # the ranking head


@pytest.mark.slow
def test_every_backbone_loads_with_remote_code_alone(
    models: dict[str, tuple[PruningEncoder, Path]],
    run_without_the_package: Callable[[str], subprocess.CompletedProcess[str]],
) -> None:
    expected = {kind: model.process(QUESTION, LONG) for kind, (model, _) in models.items()}
    saved = {kind: str(path) for kind, (_, path) in models.items()}
    script = textwrap.dedent(
        f"""
        import json
        from transformers import AutoModel
        results = {{}}
        for kind, path in {saved!r}.items():
            model = AutoModel.from_pretrained(path, trust_remote_code=True)
            results[kind] = model.process({QUESTION!r}, {LONG!r})
        print(json.dumps(results))
        """
    )
    remote = json.loads(run_without_the_package(script).stdout.strip().splitlines()[-1])
    for kind, result in remote.items():
        result["kept_spans"] = [tuple(span) for span in result["kept_spans"]]
        _same(result, expected[kind])
