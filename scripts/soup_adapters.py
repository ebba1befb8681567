"""Average LoRA adapters trained from the same start into one adapter: a model soup.

Model soups (Wortsman et al., 2022, https://arxiv.org/abs/2203.05482) average the weights of
models fine-tuned from one initialisation. For LoRA adapters the average of the weight deltas,
``sum_i w_i * B_i @ A_i``, is exactly one adapter of rank ``sum_i r_i``: the ``A`` matrices are
stacked and each ``B`` is scaled by its weight. The heads (``modules_to_save``) are averaged.

    python scripts/soup_adapters.py OUT ADAPTER_DIR:WEIGHT ADAPTER_DIR:WEIGHT ...

Each ADAPTER_DIR is a run's ``adapter/`` folder (``adapter_config.json``,
``adapter_model.safetensors`` and ``bundle.json``); the adapters must share ``lora_alpha / r``,
target modules and heads. OUT receives the three files, the first adapter's ``bundle.json``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def soup(out: Path, adapters: list[tuple[Path, float]]) -> None:
    configs = [json.loads((path / "adapter_config.json").read_text()) for path, _ in adapters]
    scales = {c["lora_alpha"] / c["r"] for c in configs}
    if len(scales) != 1:
        raise SystemExit(f"The adapters have different lora_alpha / r: {sorted(scales)}.")
    weights = [load_file(path / "adapter_model.safetensors") for path, _ in adapters]
    if any(set(w) != set(weights[0]) for w in weights):
        raise SystemExit("The adapters do not hold the same weights.")
    souped = {}
    for key in weights[0]:
        if key.endswith("lora_A.weight"):
            souped[key] = torch.cat([w[key] for w in weights], dim=0)
        elif key.endswith("lora_B.weight"):
            scaled = [f * w[key] for w, (_, f) in zip(weights, adapters, strict=True)]
            souped[key] = torch.cat(scaled, dim=1)
        else:
            souped[key] = sum(f * w[key] for w, (_, f) in zip(weights, adapters, strict=True))
    config = dict(configs[0])
    config["r"] = sum(c["r"] for c in configs)
    alpha = scales.pop() * config["r"]
    config["lora_alpha"] = int(alpha) if float(alpha).is_integer() else alpha
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in souped.items()}, out / "adapter_model.safetensors")
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    shutil.copy(adapters[0][0] / "bundle.json", out / "bundle.json")


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit(__doc__)
    adapters = []
    for spec in argv[1:]:
        path, _, weight = spec.rpartition(":")
        adapters.append((Path(path), float(weight)))
    if abs(sum(w for _, w in adapters) - 1) > 1e-6:
        raise SystemExit("The weights must add up to 1.")
    soup(Path(argv[0]), adapters)


if __name__ == "__main__":
    main(sys.argv[1:])
