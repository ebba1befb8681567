"""The benchmark and the load script run end to end in small configurations (timings unchecked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
METHODS = {"CrossEncoder", "predict", "process", "auto", "bf16", "onnx", "int8"}


def run_script(name: str, *args: str) -> str:
    """Runs ``benchmarks/NAME`` offline; fails the test if it fails; returns its stdout."""
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def test_small_benchmark_runs_and_reports_every_method(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    # --bf16 times bf16 on any CPU (by default only where it is native), so the output is the same.
    stdout = run_script("bench_process.py", "--small", "--bf16", "--json", str(output))
    assert "process/CE" in stdout
    results = json.loads(output.read_text())
    assert {(row["summaries"], row["batch"]) for row in results["grid"]} == {
        ("1w", 1),
        ("1w", 4),
        (3, 1),
        (3, 4),
    }
    for row in results["grid"]:
        assert set(row["seconds"]) == set(row["peak_mb"]) == METHODS
        assert all(seconds > 0 for seconds in row["seconds"].values())
        assert row["tokens_ours"] >= row["tokens_ce"] > 0
        # Every precision and backend reads the same windows in the same forward passes.
        read = row["padded_real_tokens"]
        assert read["process"] == read["auto"] == read["bf16"] == read["onnx"] == read["int8"]
    agreement = {(row["summaries"], row["backend"]): row for row in results["agreement"]}
    assert {backend for _, backend in agreement} == {"auto", "bf16", "onnx", "int8"}
    for (_, backend), row in agreement.items():  # 4 pairs: too few for the others' Pearson
        if backend == "onnx":
            assert row["pearson"] >= 0.999 and row["same_keep_outside_margin"] == 1.0
        assert row["same_keep_outside_margin"] >= 0.95
    assert [row["tokens"] > 0 for row in results["lengths"]] == [True, True]
    assert [row["pairs"] for row in results["memory"]] == [8, 64]
    assert all(row["peak_mb"] >= 0 for row in results["memory"])


def test_load_script_stops_by_itself_without_errors() -> None:
    report = run_script("load_service.py", "--clients", "2", "--requests", "2")
    assert "4 requests from 2 clients" in report
    assert "0 errors" in report
