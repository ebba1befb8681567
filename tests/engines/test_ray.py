"""Pruning a corpus on Ray Data: the engine-neutral BatchPruner, RayPruner's batches, and a real
local Ray cluster (started and stopped by the tests) giving what one process gives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pruning_encoder import PruningEncoder
from pruning_encoder.engines import BatchPruner, RayPruner
from pruning_encoder.engines.batch_pruner import arrow_types

pytestmark = pytest.mark.slow

QUESTION = "where is paris?"
CONTEXT = "Paris is the capital of France. Cats purr. The city is big."


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> str:
    path = tmp_path_factory.mktemp("ray") / "model"
    PruningEncoder(tiny_backbone, device="cpu").save_pretrained(path)
    return str(path)


def rows(count: int, *, not_a_string: Any = 42) -> list[dict[str, Any]]:
    """Pairs with a bad row of each kind among them (null question, a context that is not a
    string, an empty context), each with its source position in ``id``."""
    items: list[dict[str, Any]] = [
        {"id": i, "question": f"{QUESTION} {i}", "context": f"{CONTEXT} Row {i}."}
        for i in range(count)
    ]
    items[3]["question"] = None
    items[5]["context"] = not_a_string
    items[7]["context"] = "  "
    return items


BAD = {
    3: "question must be a string, got null",
    5: "context must be a string, got int",
    7: "empty context",
}


def test_batch_pruner_gives_process_results_and_flags_bad_rows(saved: str) -> None:
    pruner = BatchPruner(saved, device="cpu", threshold=0.5, max_tokens=12)
    items = rows(10)
    columns = {name: [item[name] for item in items] for name in ("id", "question", "context")}
    results = pruner.prune_columns(columns)
    assert list(results) == [*pruner.output_columns]
    assert pruner.output_columns[-2:] == ("kept_tokens", "error")
    model = PruningEncoder(saved, device="cpu")
    for i, item in enumerate(items):
        if i in BAD:
            assert results["error"][i] == BAD[i]
            assert results["pruned_context"][i] is None and results["reranking_score"][i] is None
            continue
        expected = model.process(item["question"], item["context"], threshold=0.5, max_tokens=12)
        assert results["error"][i] is None
        assert results["pruned_context"][i] == expected["pruned_context"]
        assert results["kept_spans"][i] == [list(span) for span in expected["kept_spans"]]
        assert results["reranking_score"][i] == pytest.approx(expected["reranking_score"], abs=1e-6)
        assert results["kept_tokens"][i] == expected["kept_tokens"]


def test_batch_pruner_columns_titles_and_probabilities(saved: str) -> None:
    pruner = BatchPruner(
        saved,
        device="cpu",
        question_column="q",
        context_column="text",
        title_column="title",
        return_sentence_probabilities=True,
    )
    results = pruner.prune_columns(
        {"q": [QUESTION, QUESTION], "text": [CONTEXT, CONTEXT], "title": ["Paris", None]}
    )
    model = PruningEncoder(saved, device="cpu")
    titled = model.process(QUESTION, CONTEXT, title="Paris", return_sentence_probabilities=True)
    assert results["sentence_probabilities"][0] == pytest.approx(titled["sentence_probabilities"])
    assert len(results["sentence_spans"][1]) == 3
    with pytest.raises(KeyError, match=r"no column 'q'.*it has 'question', 'context'"):
        pruner.prune_columns({"question": [QUESTION], "context": [CONTEXT]})


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"threshold": 1.5}, ValueError),
        ({"max_tokens": -1}, ValueError),
        ({"batch_size": 0}, ValueError),
        ({"threshold": True}, TypeError),
    ],
)
def test_batch_pruner_refuses_bad_settings(saved: str, options: dict, error: type) -> None:
    with pytest.raises(error):
        BatchPruner(saved, device="cpu", **options)


def test_every_batch_format_gives_one_arrow_schema(saved: str) -> None:
    pruner = RayPruner(saved, device="cpu")
    frame = pd.DataFrame(rows(8))
    expected_types = arrow_types()
    outputs = [
        pruner(frame),
        pruner({name: frame[name].to_numpy() for name in frame.columns}),
        pruner(pa.Table.from_pandas(frame.iloc[3:5], preserve_index=False)),
    ]
    assert isinstance(outputs[2], pa.Table)
    for output in outputs[:2]:
        assert list(output.columns[:3]) == ["id", "question", "context"]
        for name in pruner.output_columns:
            assert pa.array(output[name]).type == expected_types[name]
    for name in pruner.output_columns:
        assert outputs[2].schema.field(name).type == expected_types[name]
    assert outputs[0].equals(outputs[1])
    assert outputs[2]["error"].to_pylist() == [BAD[3], None]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_a_ray_run_equals_one_process(ray_cluster: Any, saved: str, tmp_path: Path) -> None:
    ray = ray_cluster
    # A Ray dataset's column has one type: its non-string context is a null.
    items = rows(24, not_a_string=None)
    # float32 in the workers too: they run the real bf16 probe, the test process a pinned one.
    kwargs = {"model": saved, "device": "cpu", "dtype": "float32", "threshold": 0.5, "threads": 1}
    dataset = ray.data.from_items(items).map_batches(
        RayPruner,
        fn_constructor_kwargs=kwargs,
        batch_size=8,
        compute=ray.data.ActorPoolStrategy(size=2),
        batch_format="pandas",
    )
    dataset.write_parquet(str(tmp_path / "out"))
    table = pq.read_table(tmp_path / "out")
    got = sorted(table.to_pylist(), key=lambda row: row["id"])
    assert [row["id"] for row in got] == list(range(24))  # none lost, none twice
    frame = pd.DataFrame(items)
    one_process = RayPruner(**kwargs)(frame).to_dict("records")
    for row, expected in zip(got, one_process, strict=True):
        assert row["error"] == expected["error"]
        assert row["pruned_context"] == expected["pruned_context"]
        assert row["kept_spans"] == expected["kept_spans"]
        if expected["reranking_score"] is not None:
            assert row["reranking_score"] == pytest.approx(expected["reranking_score"], abs=1e-5)
    assert {i for i, row in enumerate(got) if row["error"]} == set(BAD)
    assert got[5]["error"] == "context must be a string, got null"
