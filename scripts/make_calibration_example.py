"""Write examples/calibration.jsonl: 40 held-out records for ``pruning-encoder calibrate``.

From the held-out split of ``pruning-encoder build-data`` (articles the bundled model never
trained on; never the FanOutQA validation half): per record, its 3-summary context (the
relevant summary among 2 BM25 neighbours) and one irrelevant neighbour summary, with their
relevant sentence spans. Question kinds are taken in turn so that no rule dominates.

    pruning-encoder build-data --out /tmp/wiki --heldout-queries 300
    python scripts/make_calibration_example.py /tmp/wiki/heldout.jsonl
"""

from __future__ import annotations

import itertools
import json
import sys
from collections import defaultdict
from pathlib import Path

from pruning_encoder.data.records import Record, read_records, write_records

COUNT = 40
SKIPPED_KINDS = {"overview", "fanoutqa"}  # vague questions; FanOutQA's come with the benchmark


def _pair(record: Record) -> Record | None:
    """The record's multi-summary relevant context and its first irrelevant text."""
    assert record.labels is not None
    relevant = [i for i, label in enumerate(record.labels) if label > 0 and "\n" in record.texts[i]]
    irrelevant = [i for i, label in enumerate(record.labels) if label == 0]
    if not relevant or not irrelevant:
        return None
    keep = [relevant[0], irrelevant[0]]
    return Record(
        record.query,
        [record.texts[i] for i in keep],
        [record.relevant_spans[i] for i in keep],
        labels=[record.labels[i] for i in keep],
        id=record.id,
    )


def main(source: str, target: str = "examples/calibration.jsonl") -> None:
    by_kind: dict[str, list[Record]] = defaultdict(list)
    for record in read_records(source):
        kind = record.id["kind"]
        pair = _pair(record)
        if kind not in SKIPPED_KINDS and pair is not None:
            by_kind[kind].append(pair)
    in_turn = itertools.chain.from_iterable(itertools.zip_longest(*by_kind.values()))
    chosen = [record for record in in_turn if record is not None][:COUNT]
    write_records(chosen, Path(target))
    print(json.dumps({"records": len(chosen), "kinds": len(by_kind)}))


if __name__ == "__main__":
    main(*sys.argv[1:])
