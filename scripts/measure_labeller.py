"""Measure an LLM labeller before training on its labels (issue 23, item 3).

On the FanOutQA validation half's pruning contexts (the evidence summary + the question's 2 top
BM25 hits, see DATA.md), runs ``pruning-encoder label`` and scores its sentence labels against
what can be checked: whether every answer string lies inside the labelled sentences, and how much
of the distractor text stays unlabelled. The validation half is used here only to measure and
choose the labeller, never to train on.

    HF_HUB_OFFLINE=1 python scripts/measure_labeller.py --gguf MODEL.gguf --work runs/labeller

Resumable: the label command's cache lives in ``WORK``; run the same command again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from pruning_encoder.evaluation import load_fanoutqa_validation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", required=True, help="the labelling model (a GGUF file)")
    parser.add_argument("--work", type=Path, default=Path("runs/labeller"))
    parser.add_argument("--threads", default="1")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    cases = load_fanoutqa_validation()["pruning"]
    source = args.work / "validation-pruning.jsonl"
    with source.open("w", encoding="utf-8") as stream:
        for i, record in enumerate(cases):
            row = {"question": record.query, "context": record.texts[0], "id": i}
            stream.write(json.dumps({**row, "answers": record.answers}) + "\n")
    output = args.work / "labelled.jsonl"
    command = [
        sys.executable,
        "-m",
        "pruning_encoder",
        "label",
        str(source),
        "--output",
        str(output),
        "--gguf",
        args.gguf,
        "--threads",
        args.threads,
    ]
    subprocess.run(command, check=False)
    labelled = {row["id"]: row for row in map(json.loads, output.read_text().splitlines())}
    answer_inside = distractor_chars = distractor_labelled = evidence_chars = evidence_kept = 0
    for i, record in enumerate(cases):
        row = labelled.get(i)
        text = record.texts[0]
        labels = [tuple(span) for span in row["relevant_spans"][0]] if row else []
        inside = "".join(text[s:e] for s, e in labels).lower()
        answer_inside += all(answer.lower() in inside for answer in record.answers)
        evidence = [tuple(span) for span in record.relevant_spans[0]]
        for position in range(len(text)):
            if text[position].isspace():
                continue
            in_evidence = any(s <= position < e for s, e in evidence)
            in_labels = any(s <= position < e for s, e in labels)
            evidence_chars += in_evidence
            evidence_kept += in_evidence and in_labels
            distractor_chars += not in_evidence
            distractor_labelled += (not in_evidence) and in_labels
    count = len(cases)
    print(f"contexts: {count}, labelled: {len(labelled)}")
    print(f"answer inside the labels: {answer_inside / count:.1%}")
    print(
        f"distractor characters left unlabelled: {1 - distractor_labelled / distractor_chars:.1%}"
    )
    print(f"evidence characters labelled: {evidence_kept / evidence_chars:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
