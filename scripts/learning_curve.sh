#!/usr/bin/env bash
# The learning curve of the default model's stage 2 (issue 23): the same start (the stage-1
# model), the same steps, three kinds of training data, evaluated on the FanOutQA validation half.
#   rules: questions from the cue rules (data/wiki_questions.py), labelled at the cue's sentences;
#   llm:   questions a language model wrote (scripts/write_questions.sh), labelled at their sentence;
#   mix:   both.
# Contexts are those of `pruning-encoder build-data`: the relevant summary with the question's top
# BM25 hits. Usage: bash scripts/learning_curve.sh [STEPS]   (default 150; 32 pairs a step)
# Writes runs/curve-KIND/{model,fanoutqa.json} and prints the table (scripts/curve_table.py).
# Every run reads the same validation file (the rule questions': LLM questions are written for
# training summaries only).
set -euo pipefail
export HF_HUB_OFFLINE=1
cd "$(dirname "$0")/.."
bin=${PRUNING_ENCODER_BIN:-.venv/bin}
steps=${1:-150}
questions=(data/llm/questions-*.jsonl)

for kind in rules llm mix; do
    case $kind in mix) kinds="rules llm" ;; *) kinds=$kind ;; esac
    data=data/curve-$kind
    [ -f "$data/manifest.json" ] ||
        "$bin/pruning-encoder" build-data --out "$data" --kinds $kinds --llm-questions "${questions[@]}" >/dev/null
    run=runs/curve-$kind
    [ -f "$run/model/config.json" ] ||
        "$bin/pruning-encoder" train configs/minilm-l6-wiki-retrieval.yaml \
            --set data.train="$data/train.jsonl" --set data.eval=data/curve-rules/validation.jsonl \
            --set training.max_steps="$steps" --set training.output_dir="$run"
    [ -f "$run/fanoutqa.json" ] ||
        "$bin/pruning-encoder" eval -q --model "$run/model" --output "$run/fanoutqa.json" >/dev/null
done
"$bin/python" scripts/curve_table.py runs/curve-rules runs/curve-llm runs/curve-mix
