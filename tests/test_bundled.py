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
    assert {p.name for p in files} >= {"adapter_model.safetensors", "bundle.json"}
    assert sum(p.stat().st_size for p in files) <= 25 * 1024 * 1024
    assert not [p for p in files if p.suffix in {".bin", ".pt", ".pkl"}]


def test_a_local_directory_of_the_same_name_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert bundle_dir(DEFAULT_MODEL) == MODELS_DIR / DEFAULT_MODEL
    (tmp_path / DEFAULT_MODEL).mkdir()
    assert bundle_dir(DEFAULT_MODEL) is None


def test_the_readme_main_command_keeps_the_louvre_sentence_alone(
    default_model: PruningEncoder,
) -> None:
    louvre = default_model.process("When did the Louvre open as a museum?", PARIS)
    assert louvre["pruned_context"] == LOUVRE
    assert louvre["compression_rate"] > 80


def test_keeps_the_answer_and_drops_the_unrelated(default_model: PruningEncoder) -> None:
    cheetah = default_model.process("How fast can a cheetah run?", PARIS)
    assert SPEED in cheetah["pruned_context"]
    assert "Seine" not in cheetah["pruned_context"]
    assert "population" not in cheetah["pruned_context"]


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
    assert result["pruned_context"] == LOUVRE
