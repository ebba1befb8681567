"""Print the learning-curve table from ``pruning-encoder eval --output`` reports.

    python scripts/curve_table.py RUN_DIR [RUN_DIR ...]

Each RUN_DIR holds ``fanoutqa.json``. Columns: MRR@10 on the 256 ranking cases; on the 39 pruning
cases, the highest threshold of the report's trade-off curve that keeps every answer of at least
95% of them (the lowest when none does), and what it removes there; then the same at a fixed
threshold 0.1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pruning_encoder.evaluation.thresholds import highest_reaching

TARGET = 0.95


def row(report: dict) -> list[str]:
    curve = report["curves"]["model"]
    chosen = highest_reaching(curve, "answer_kept", TARGET)
    if chosen is None:
        chosen = min(p["threshold"] for p in curve)
    best = next(p for p in curve if p["threshold"] == chosen)
    fixed = min(curve, key=lambda p: abs(p["threshold"] - 0.1))
    cells = [f"{report['methods']['model']['mrr@10']:.3f}"]
    for point in (best, fixed):
        cells += [
            f"{point['threshold']:.2f}",
            f"{point['answer_kept']:.3f}",
            f"{point['removed_distractor_pct']:.1f}",
            f"{point['removed_evidence_pct']:.1f}",
        ]
    return cells


def main(argv: list[str]) -> int:
    header = ["run", "MRR@10", "thr@95%", "answer", "rm distr %", "rm evid %"]
    header += ["thr", "answer", "rm distr %", "rm evid %"]
    lines = [header]
    for run in argv:
        report = json.loads((Path(run) / "fanoutqa.json").read_text())
        lines.append([Path(run).name, *row(report)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
