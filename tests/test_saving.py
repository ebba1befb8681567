"""Saving never destroys the user's files: saves and exports merge into the target folder."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pruning_encoder import PruningEncoder
from pruning_encoder.cli import main


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def test_files_we_did_not_write_survive_a_save(tiny_model: PruningEncoder, tmp_path: Path) -> None:
    (tmp_path / "train.log").write_text("step 100: loss 0.3\n")
    (tmp_path / "checkpoint-100").mkdir()
    (tmp_path / "checkpoint-100" / "optimizer.safetensors").write_bytes(b"state")
    tiny_model.save_pretrained(tmp_path)
    assert (tmp_path / "train.log").read_text() == "step 100: loss 0.3\n"
    assert (tmp_path / "checkpoint-100" / "optimizer.safetensors").read_bytes() == b"state"
    assert PruningEncoder(tmp_path).predict([("q", "c")]).shape == (1,)
    tiny_model.save_pretrained(tmp_path)  # saving again over the model keeps them too
    assert (tmp_path / "train.log").exists() and (tmp_path / "checkpoint-100").is_dir()
    assert leftovers(tmp_path) == []


def test_a_file_path_is_refused_and_left_as_it_is(
    tiny_model: PruningEncoder, tmp_path: Path
) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    with pytest.raises(NotADirectoryError, match=r"notes\.txt: it is a file, not a folder"):
        tiny_model.save_pretrained(target)
    with pytest.raises(NotADirectoryError, match="it is a file"):
        tiny_model.export_ranking_model(target)
    assert target.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_saving_into_the_working_directory(
    tiny_model: PruningEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.me").write_text("x")
    tiny_model.save_pretrained(".")
    assert (tmp_path / "config.json").is_file() and (tmp_path / "keep.me").is_file()
    assert leftovers(tmp_path) == []
    assert PruningEncoder(tmp_path).predict([("q", "c")]).shape == (1,)


def test_saved_folders_follow_the_umask(
    tiny_model: PruningEncoder, tmp_path: Path, umask_022: None
) -> None:
    tiny_model.save_pretrained(tmp_path / "model", export_ranking_model=True)
    folders = [tmp_path / "model", *(p for p in (tmp_path / "model").rglob("*") if p.is_dir())]
    assert {stat.S_IMODE(p.stat().st_mode) for p in folders} == {0o755}
    files = [p for p in (tmp_path / "model").rglob("*") if p.is_file()]
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}


def test_a_stale_folder_of_our_layout_goes_and_the_users_stay(
    tiny_model: PruningEncoder, tmp_path: Path
) -> None:
    tiny_model.save_pretrained(tmp_path, export_ranking_model=True)
    assert (tmp_path / "ranking_model_standalone").is_dir()
    (tmp_path / "my_notes").mkdir()
    tiny_model.save_pretrained(tmp_path)
    assert not (tmp_path / "ranking_model_standalone").exists()
    assert (tmp_path / "my_notes").is_dir()


def test_cli_output_onto_a_folder_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"question": "q", "context": "c"}\n')
    out = tmp_path / "out"
    out.mkdir()
    assert main(["prune", "--input", str(pairs), "--output", str(out), "--device", "cpu"]) == 2
    assert "it is a folder" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_source_files_are_exactly_what_the_remote_code_imports(
    tiny_model: PruningEncoder, tmp_path: Path
) -> None:
    """SOURCE_FILES = the entry points named in config.json plus every sibling they import, as
    transformers' own resolver finds them, and a save copies exactly those .py files."""
    from transformers.dynamic_module_utils import get_relative_import_files

    import pruning_encoder
    from pruning_encoder.saving import AUTO_MAP, CUSTOM_PIPELINES, SOURCE_FILES

    here = Path(pruning_encoder.__file__).parent
    entries = {reference.split(".")[0] for reference in AUTO_MAP.values()}
    entries |= {task["impl"].split(".")[0] for task in CUSTOM_PIPELINES.values()}
    needed = set()
    for entry in entries:
        needed.add(f"{entry}.py")
        needed |= {Path(f).name for f in get_relative_import_files(str(here / f"{entry}.py"))}
    assert sorted(SOURCE_FILES) == sorted(needed)
    tiny_model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.py")) == sorted(needed)
