"""Pruning a corpus on Spark: a local Spark session (started and stopped by the tests) gives what
one process gives, bad rows in the error column."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pruning_encoder import PruningEncoder
from pruning_encoder.engines import BatchPruner

pytest.importorskip("pyspark")
if shutil.which("java") is None and not os.environ.get("CI"):
    pytest.skip("Spark needs Java (CI installs it)", allow_module_level=True)

from pruning_encoder.engines.spark import pruning_udf

pytestmark = pytest.mark.slow

QUESTION = "where is paris?"
CONTEXT = "Paris is the capital of France. Cats purr. The city is big."


@pytest.fixture(scope="module")
def session() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    # The workers must run this interpreter, which has the package.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    try:
        yield spark
    finally:
        spark.stop()


def test_a_spark_run_equals_one_process(session: Any, tiny_backbone: Path, tmp_path: Path) -> None:
    model = str(tmp_path / "model")
    PruningEncoder(tiny_backbone, device="cpu").save_pretrained(model)
    rows = [(i, f"{QUESTION} {i}", f"{CONTEXT} Row {i}.", f"Title {i}") for i in range(12)]
    rows[3] = (3, None, CONTEXT, None)
    rows[7] = (7, QUESTION, " ", None)
    frame = session.createDataFrame(rows, "id long, question string, context string, title string")
    frame = frame.repartition(4)  # more partitions than workers: they reuse their pruner
    # float32 in the workers too: they run the real bf16 probe, the test process a pinned one.
    options = {"model": model, "device": "cpu", "dtype": "float32", "threads": 1}
    options |= {"threshold": 0.5, "max_tokens": 20}
    prune = pruning_udf(title_column="title", **options)
    result = frame.withColumn("result", prune("question", "context", "title"))
    result = result.select("*", "result.*").drop("result")
    result.write.parquet(str(tmp_path / "out"))
    got = [
        row.asDict() for row in session.read.parquet(str(tmp_path / "out")).orderBy("id").collect()
    ]
    assert [row["id"] for row in got] == list(range(12))
    one_process = BatchPruner(title_column="title", **options).prune_columns(
        {
            "question": [row[1] for row in rows],
            "context": [row[2] for row in rows],
            "title": [row[3] for row in rows],
        }
    )
    for i, row in enumerate(got):
        for name, values in one_process.items():
            if name == "reranking_score" and values[i] is not None:
                assert row[name] == pytest.approx(values[i], abs=1e-5)
            else:
                assert row[name] == values[i], (i, name)
    assert got[3]["error"] == "question must be a string, got null"
    assert got[7]["error"] == "empty context"


def test_the_model_loads_once_per_worker_process(
    tiny_backbone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    from pruning_encoder.engines import spark

    loads: list[dict[str, Any]] = []

    class CountingPruner(BatchPruner):
        def __init__(self, **options: Any) -> None:
            loads.append(options)
            super().__init__(**options)

    monkeypatch.setattr(spark, "BatchPruner", CountingPruner)
    monkeypatch.setattr(spark, "_PRUNERS", {})
    model = str(tmp_path / "model")
    PruningEncoder(tiny_backbone, device="cpu").save_pretrained(model)
    options = {"model": model, "device": "cpu", "threads": 1, "threshold": 0.5}

    def partition(i: int) -> Any:
        return iter([(pd.Series([f"{QUESTION} {i}"]), pd.Series([f"{CONTEXT} {i}"]))])

    # What one Python worker process runs: 4 partitions of a job, then 4 of another job.
    for job in range(2):
        prune = pruning_udf(**options)
        for i in range(4):
            (frame,) = prune.func(partition(i))
            assert frame["error"].tolist() == [None], (job, i)
    assert len(loads) == 1
    list(pruning_udf(**{**options, "threshold": 0.9}).func(partition(0)))
    assert len(loads) == 2  # other options: another pruner
