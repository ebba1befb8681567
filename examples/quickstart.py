"""Prune a real context with the bundled default model, offline: python examples/quickstart.py"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pruning_encoder import PruningEncoder


def main() -> None:
    model = PruningEncoder("minilm-l6-wiki", device="cpu")  # ships with the package
    context = (Path(__file__).parent / "paris.txt").read_text()
    for question in ("When did the Louvre open as a museum?", "How fast can a cheetah run?"):
        result = model.process(question, context)
        print(f"{question}\n{json.dumps(result, indent=2, ensure_ascii=False)}\n")


if __name__ == "__main__":
    main()
