"""The high-level PruningEncoder: create, predict, rank, save, load and export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pruning_encoder import PruningEncoder, __version__

PAIRS = [("what is paris?", "Paris is the capital of France."), ("a cat?", "The dog is a dog.")]


def test_unknown_mode(tiny_backbone: Path) -> None:
    with pytest.raises(ValueError, match="Unknown mode 'prune'"):
        PruningEncoder(tiny_backbone, mode="prune")


def test_predict_return_shapes(tiny_model: PruningEncoder) -> None:
    scores = tiny_model.predict(PAIRS)
    assert isinstance(scores, np.ndarray) and scores.shape == (2,)
    assert np.all((scores > 0) & (scores < 1))
    single = tiny_model.predict(PAIRS[0])
    assert np.ndim(single) == 0 and single == pytest.approx(scores[0], abs=1e-6)
    tensor = tiny_model.predict(PAIRS, convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (2,)
    logits = tiny_model.predict(PAIRS, activation_fn=lambda x: x)
    assert logits == pytest.approx(np.log(scores / (1 - scores)), abs=1e-4)
    with pytest.raises(ValueError, match=r"inputs\[1\] must be a \(query, document\) pair"):
        tiny_model.predict([PAIRS[0], ("only one",)])  # type: ignore[list-item]


def test_rank_sorts_best_first(tiny_model: PruningEncoder) -> None:
    documents = ["Paris is the capital.", "The dog.", "Cats purr.", "It was 1990."]
    scores = tiny_model.predict([("what is paris?", d) for d in documents])
    ranked = tiny_model.rank("what is paris?", documents, top_k=3, return_documents=True)
    assert [r["corpus_id"] for r in ranked] == list(np.argsort(-scores, kind="stable")[:3])
    assert all(r["text"] == documents[r["corpus_id"]] for r in ranked)
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    assert set(tiny_model.rank("q", documents)[0]) == {"corpus_id", "score"}


def test_save_load_round_trip(tiny_model: PruningEncoder, tmp_path: Path) -> None:
    tiny_model.config.default_threshold = 0.42
    tiny_model.save_pretrained(tmp_path / "model")
    loaded = PruningEncoder.from_pretrained(tmp_path / "model", device="cpu")
    assert loaded.config.default_threshold == 0.42
    np.testing.assert_allclose(loaded.predict(PAIRS), tiny_model.predict(PAIRS), atol=1e-6)
    context = "Paris is the capital of France. Cats purr. The dog is a dog."
    ours = tiny_model.process("q", context, return_sentence_probabilities=True)
    theirs = loaded.process("q", context, return_sentence_probabilities=True)
    assert theirs["sentence_probabilities"] == pytest.approx(
        ours["sentence_probabilities"], abs=1e-6
    )
    # The constructor accepts a saved directory too.
    again = PruningEncoder(tmp_path / "model", device="cpu")
    np.testing.assert_allclose(again.predict(PAIRS), tiny_model.predict(PAIRS), atol=1e-6)


def test_pruning_only_round_trip(tiny_pruning_only: PruningEncoder, tmp_path: Path) -> None:
    tiny_pruning_only.save_pretrained(tmp_path / "p")
    assert (tmp_path / "p" / "encoder_model" / "model.safetensors").is_file()
    assert not (tmp_path / "p" / "ranking_model").exists()
    config = json.loads((tmp_path / "p" / "config.json").read_text())
    assert config["architectures"] == ["PruningEncoderForTokenClassification"]
    loaded = PruningEncoder.from_pretrained(tmp_path / "p", device="cpu")
    assert loaded.mode == "pruning_only"
    context = "Paris is big. Cats purr."
    assert loaded.process("q", context, return_sentence_probabilities=True)[
        "sentence_probabilities"
    ] == pytest.approx(
        tiny_pruning_only.process("q", context, return_sentence_probabilities=True)[
            "sentence_probabilities"
        ],
        abs=1e-6,
    )
    with pytest.raises(ValueError, match="pruning_only"):
        tiny_pruning_only.export_ranking_model(tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_export_ranking_model(tiny_model: PruningEncoder, tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path / "m", export_ranking_model=True)
    standalone = tmp_path / "m" / "ranking_model_standalone"
    tiny_model.export_ranking_model(tmp_path / "elsewhere")
    for directory in (standalone, tmp_path / "elsewhere"):
        for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md"):
            assert (directory / name).is_file(), name
        metadata = json.loads((directory / "export_metadata.json").read_text())
        assert metadata["exported_from"] == "PruningEncoder"
        assert metadata["export_type"] == "ranking_only"
        assert metadata["original_capabilities"] == {"ranking": True, "pruning": True}
        assert metadata["pruning_encoder_version"] == __version__
        assert "source_path" in metadata


def test_model_card(tiny_model: PruningEncoder, tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path / "m")
    card = (tmp_path / "m" / "README.md").read_text()
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert "library_name: pruning-encoder" in front
    assert "pipeline_tag: text-ranking" in front
    assert "license:" in front and "tags:" in front
    for loading_path in (
        "PruningEncoder.from_pretrained",
        "trust_remote_code=True",
        "AutoModelForTokenClassification",
        "CrossEncoder",
        "pipeline(",
    ):
        assert loading_path in body, loading_path


def test_save_is_atomic(
    tiny_model: PruningEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "m"
    tiny_model.save_pretrained(target)
    before = sorted(p.relative_to(target) for p in target.rglob("*"))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("pruning_encoder.pruning_encoder.write_model_card", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        tiny_model.save_pretrained(target)
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
    with pytest.raises(RuntimeError, match="disk full"):
        tiny_model.save_pretrained(tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_loaded_model_saved_again_keeps_its_tokenizer(
    tiny_model: PruningEncoder, tmp_path: Path
) -> None:
    tiny_model.save_pretrained(tmp_path / "first")
    PruningEncoder(tmp_path / "first").save_pretrained(tmp_path / "second")
    again = PruningEncoder(tmp_path / "second")
    assert again.tokenizer("paris")["input_ids"] == tiny_model.tokenizer("paris")["input_ids"]


def test_a_new_model_warns_once_that_its_heads_are_untrained(
    tiny_backbone: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pruning_encoder.loading._WARNED_UNTRAINED", set())
    with caplog.at_level("WARNING", logger="pruning_encoder.loading"):
        model = PruningEncoder(tiny_backbone, device="cpu")
        PruningEncoder(tiny_backbone, device="cpu")
    warnings = [r for r in caplog.records if "heads are untrained" in r.getMessage()]
    assert len(warnings) == 1
    caplog.clear()
    with caplog.at_level("WARNING", logger="pruning_encoder.loading"):
        model.save_pretrained(tmp_path / "saved")
        PruningEncoder(tmp_path / "saved", device="cpu")
    assert not [r for r in caplog.records if "untrained" in r.getMessage()]
