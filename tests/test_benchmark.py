"""The benchmark and the load script run end to end in small configurations (timings unchecked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "bench_process.py"
METHODS = {"CrossEncoder", "predict", "process", "onnx", "int8"}


def test_small_benchmark_runs_and_reports_every_method(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--small", "--json", str(output)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "process/CE" in completed.stdout
    results = json.loads(output.read_text())
    assert {(row["summaries"], row["batch"]) for row in results["grid"]} == {
        (1, 1),
        (1, 4),
        (3, 1),
        (3, 4),
    }
    for row in results["grid"]:
        assert set(row["seconds"]) == METHODS
        assert all(seconds > 0 for seconds in row["seconds"].values())
        assert row["tokens_ours"] >= row["tokens_ce"] > 0
    assert {row["backend"] for row in results["agreement"]} == {"onnx", "int8"}
    assert all(0.0 <= row["same_keep"] <= 1.0 for row in results["agreement"])
    assert [row["tokens"] > 0 for row in results["lengths"]] == [True, True]


def test_load_script_stops_by_itself_without_errors() -> None:
    script = SCRIPT.with_name("load_service.py")
    completed = subprocess.run(
        [sys.executable, str(script), "--clients", "2", "--requests", "2"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "4 requests from 2 clients" in completed.stdout
    assert "0 errors" in completed.stdout
