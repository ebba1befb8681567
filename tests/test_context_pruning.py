"""process(): input shapes, spans, thresholds, titles, windows and bad input."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pruning_encoder import PruningEncoder, split_sentences
from pruning_encoder.context_pruning import RESULT_FIELDS, Document, kept_spans, prune_group
from pruning_encoder.windows import PASS_OVERHEAD_TOKENS, pack_windows, token_batches

CONTEXT = "Paris is the capital of France. Cats purr. The dog is a dog."
RESULT_KEYS = {"pruned_context", "reranking_score", "compression_rate", "kept_spans"}


def test_str_and_str_gives_one_result(tiny_model: PruningEncoder) -> None:
    result = tiny_model.process("what is paris?", CONTEXT)
    assert set(result) == RESULT_KEYS
    assert 0.0 <= result["reranking_score"] <= 1.0
    assert result["pruned_context"] == "".join(CONTEXT[s:e] for s, e in result["kept_spans"])


def test_shape_matrix(tiny_model: PruningEncoder) -> None:
    docs = [CONTEXT, "The cat is a cat.", "It was in 1990."]
    per_doc = tiny_model.process("what?", docs)
    assert isinstance(per_doc, list) and len(per_doc) == 3
    aligned = tiny_model.process(["a?", "b?"], docs[:2])
    assert [type(r) for r in aligned] == [dict, dict]
    nested = tiny_model.process(["a?", "b?"], [docs, docs[:1]])
    assert [len(group) for group in nested] == [3, 1]
    # The same pair gives the same answer whatever shape it came in.
    single = tiny_model.process("a?", docs[0])
    assert nested[0][0]["reranking_score"] == pytest.approx(single["reranking_score"], abs=1e-6)
    assert aligned[0]["kept_spans"] == single["kept_spans"]


def test_presplit_sentences(tiny_model: PruningEncoder) -> None:
    result = tiny_model.process(
        "q?",
        ["First one.", "Second one."],
        presplit=True,
        threshold=0.0,
        return_sentence_probabilities=True,
    )
    assert result["pruned_context"] == "First one. Second one."
    assert result["sentence_spans"] == [(0, 10), (11, 22)]
    several = tiny_model.process("q?", [["A b.", "C d."], ["E."]], presplit=True)
    assert len(several) == 2


@pytest.mark.parametrize(
    ("question", "context", "message"),
    [
        ("q", None, "context is None"),
        ("q", 42, "With one question"),
        (["a", "b"], ["only one"], "same length"),
        (["a", "b"], "not a list", "same length"),
        (["a"], ["x", "y"], "same length"),
        (["a", "b"], ["doc", ["mixed"]], "not a mix"),
    ],
)
def test_mismatched_shapes_raise(
    tiny_model: PruningEncoder, question: object, context: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_model.process(question, context)


def test_question_must_be_text(tiny_model: PruningEncoder) -> None:
    with pytest.raises(TypeError, match="question"):
        tiny_model.process(3, "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"question\[1\]"):
        tiny_model.process(["a", None], ["x", "y"])  # type: ignore[list-item]


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_threshold_outside_unit_interval(tiny_model: PruningEncoder, threshold: float) -> None:
    with pytest.raises(ValueError, match=r"threshold must be within \[0, 1\]"):
        tiny_model.process("q", CONTEXT, threshold=threshold)


@pytest.mark.parametrize("context", ["", "   \n\t "])
def test_empty_context_is_scored_and_prunes_to_nothing(
    tiny_model: PruningEncoder, context: str
) -> None:
    result = tiny_model.process("q?", context, threshold=0.0)
    assert result["pruned_context"] == ""
    assert result["kept_spans"] == []
    assert result["compression_rate"] == (0.0 if not context else 100.0)
    expected = tiny_model.predict(("q?", context))
    assert result["reranking_score"] == pytest.approx(float(expected), abs=1e-6)


def test_threshold_ends_and_default(tiny_model: PruningEncoder) -> None:
    everything = tiny_model.process("q", CONTEXT, threshold=0.0)
    assert everything["pruned_context"] == CONTEXT
    assert everything["compression_rate"] == 0.0
    nothing = tiny_model.process("q", CONTEXT, threshold=1.0)
    assert nothing["pruned_context"] == "" and nothing["compression_rate"] == 100.0
    probabilities = tiny_model.process("q", CONTEXT, return_sentence_probabilities=True)[
        "sentence_probabilities"
    ]
    tiny_model.config.default_threshold = float(np.median(probabilities))
    default = tiny_model.process("q", CONTEXT)
    kept = sum(p > tiny_model.config.default_threshold for p in probabilities)
    assert len(default["pruned_context"]) < len(CONTEXT) and kept >= 1


@pytest.mark.parametrize(
    ("probabilities", "always", "expected"),
    [
        ([0.1, 0.9, 0.2], True, "Paris. Paris is big."),
        ([0.1, 0.9, 0.2], False, "Paris is big."),
        ([0.1, 0.2, 0.2], True, ""),
    ],
)
def test_title_first_sentence(probabilities: list[float], always: bool, expected: str) -> None:
    text = "Paris. Paris is big. Cats purr."
    doc = Document("q", text, [(0, 6), (7, 20), (21, 31)], first_sentence_is_title=True)
    [result] = prune_group(
        None,  # type: ignore[arg-type]  # no budget: nothing to count
        [doc],
        [0.5],
        [np.array(probabilities)],
        threshold=0.5,
        always_select_title=always,
    )
    assert result["pruned_context"] == expected


def test_explicit_titles_change_the_input_not_the_output(tiny_model: PruningEncoder) -> None:
    plain = tiny_model.process("q", CONTEXT, threshold=0.0)
    titled = tiny_model.process("q", CONTEXT, threshold=0.0, title="France")
    assert titled["pruned_context"] == CONTEXT
    assert titled["reranking_score"] != pytest.approx(plain["reranking_score"], abs=1e-9)
    with pytest.raises(ValueError, match="title must be"):
        tiny_model.process("q", [CONTEXT, CONTEXT], title=["only one"])


def test_reorder_and_top_k(tiny_model: PruningEncoder) -> None:
    docs = ["The cat is a cat.", CONTEXT, "It was in 1990.", "dog dog dog."]
    plain = tiny_model.process("what is paris?", docs)
    scores = [r["reranking_score"] for r in plain]
    ranked = tiny_model.process("what is paris?", docs, reorder=True, top_k=2)
    assert [r["index"] for r in ranked] == list(np.argsort(scores)[::-1][:2])
    best_two_in_order = tiny_model.process("what is paris?", docs, top_k=2)
    assert [r["index"] for r in best_two_in_order] == sorted(r["index"] for r in ranked)
    with pytest.raises(ValueError, match="top_k"):
        tiny_model.process("q", docs, top_k=0)


def test_pruning_only_model_has_no_scores(tiny_pruning_only: PruningEncoder) -> None:
    result = tiny_pruning_only.process("q", CONTEXT)
    assert result["reranking_score"] is None
    with pytest.raises(ValueError, match="pruning_only"):
        tiny_pruning_only.process("q", [CONTEXT], reorder=True)
    with pytest.raises(ValueError, match="pruning_only"):
        tiny_pruning_only.predict(("q", CONTEXT))


def test_custom_splitter_and_language(tiny_model: PruningEncoder) -> None:
    result = tiny_model.process(
        "q",
        "a b | c d",
        sentence_splitter=lambda text: text.split("|"),
        threshold=0.0,
        return_sentence_probabilities=True,
    )
    assert result["sentence_spans"] == [(0, 3), (6, 9)]
    japanese = tiny_model.process(
        "q", "猫です。犬です。", language="ja", threshold=0.0, return_sentence_probabilities=True
    )
    assert japanese["sentence_spans"] == [(0, 4), (4, 8)]
    assert japanese["pruned_context"] == "猫です。犬です。"


def test_long_context_is_windowed_not_truncated(tiny_model: PruningEncoder) -> None:
    sentences = [f"Sentence {i} is about the cat." for i in range(60)]
    context = " ".join(sentences)
    tokens = len(tiny_model.tokenizer(context)["input_ids"])
    assert tokens > 4 * tiny_model.max_length
    result = tiny_model.process("q", context, threshold=0.0, return_sentence_probabilities=True)
    assert result["pruned_context"] == context
    assert len(result["sentence_probabilities"]) == 60
    assert all(p > 0 for p in result["sentence_probabilities"])
    # The document's score is its best window's score.
    window_scores = tiny_model.predict([("q", s) for s in [context]])
    assert result["reranking_score"] == pytest.approx(float(window_scores[0]), abs=1e-6)


def test_overlong_sentence_is_split_across_windows(tiny_model: PruningEncoder) -> None:
    context = "cat " * 300 + "end."
    result = tiny_model.process("q", context, threshold=0.0, return_sentence_probabilities=True)
    assert result["pruned_context"] == context.strip()
    assert 0.0 < result["sentence_probabilities"][0] < 1.0


def test_question_too_long_is_refused(tiny_model: PruningEncoder) -> None:
    with pytest.raises(ValueError, match="too little of max_length"):
        tiny_model.process("cat " * 200, CONTEXT)


def test_batch_size_does_not_change_results(tiny_model: PruningEncoder) -> None:
    docs = [CONTEXT, "cat " * 100, "The dog.", ""] * 3
    one = tiny_model.process("q", docs, batch_size=1, return_sentence_probabilities=True)
    many = tiny_model.process("q", docs, batch_size=5, return_sentence_probabilities=True)
    for a, b in zip(one, many, strict=True):
        assert a["reranking_score"] == pytest.approx(b["reranking_score"], abs=1e-5)
        assert a["sentence_probabilities"] == pytest.approx(b["sentence_probabilities"], abs=1e-5)


def test_look_ahead_chunks_do_not_change_results(tiny_model: PruningEncoder) -> None:
    # 40 documents are 3 look-ahead chunks at batch_size=1 and one at batch_size=64.
    docs = [f"Paris is big {i}. " * (1 + i % 7) + "Cats purr." for i in range(40)]
    small = tiny_model.process("q", docs, batch_size=1, return_sentence_probabilities=True)
    large = tiny_model.process("q", docs, batch_size=64, return_sentence_probabilities=True)
    for a, b in zip(small, large, strict=True):
        assert a["reranking_score"] == pytest.approx(b["reranking_score"], abs=1e-5)
        assert a["sentence_probabilities"] == pytest.approx(b["sentence_probabilities"], abs=1e-5)


@pytest.mark.parametrize(
    ("lengths", "budget", "expected"),
    [
        ([100, 100, 50, 50, 50, 10], 200, [(0, 2), (2, 6)]),
        ([300, 20], 200, [(0, 1), (1, 2)]),  # a window longer than the budget goes alone
        ([10] * 5, 1000, [(0, 5)]),
        ([], 100, []),
        # Room for all 33, but padding 30 short windows to 256 costs more than another pass.
        ([256] * 3 + [20] * 30, 8192, [(0, 3), (3, 33)]),
    ],
)
def test_token_batches_fit_the_budget(
    lengths: list[int], budget: int, expected: list[tuple[int, int]]
) -> None:
    assert list(token_batches(lengths, budget)) == expected


def padded_cost(lengths: list[int], ranges: list[tuple[int, int]]) -> int:
    return sum((stop - start) * lengths[start] + PASS_OVERHEAD_TOKENS for start, stop in ranges)


@pytest.mark.parametrize("seed", range(20))
def test_token_batches_cover_in_order_and_never_cost_more_than_filling_each_pass(
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    lengths = sorted(rng.integers(5, 300, size=int(rng.integers(1, 200))).tolist(), reverse=True)
    budget = int(rng.choice([256, 1024, 8192]))
    ranges = list(token_batches(lengths, budget))
    assert [start for start, _ in ranges] == [0] + [stop for _, stop in ranges[:-1]]
    assert ranges[-1][1] == len(lengths)
    assert all(
        stop - start == 1 or (stop - start) * lengths[start] <= budget for start, stop in ranges
    )
    greedy, start = [], 0
    while start < len(lengths):
        greedy.append((start, min(len(lengths), start + max(1, budget // lengths[start]))))
        start = greedy[-1][1]
    assert padded_cost(lengths, ranges) <= padded_cost(lengths, greedy)
    # A pass costing a whole budget (a GPU's case): the fewest passes, each filled in turn.
    assert list(token_batches(lengths, budget, overhead=budget)) == greedy


def one_window_at_a_time(
    model: PruningEncoder, question: str, context: str
) -> tuple[float, list[float]]:
    """The straightforward path: each window tokenised as its own (question, text) pair and run
    alone, unpadded; probabilities averaged per sentence in Python."""
    tokenizer = model.tokenizer
    spans = split_sentences(context)
    question_tokens = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    budget = model.max_length - 3 - question_tokens
    windows: list[list[int]] = [[]]
    used = 0
    for i, (start, end) in enumerate(spans):
        size = len(tokenizer(context[start:end], add_special_tokens=False)["input_ids"])
        if used + size > budget and windows[-1]:
            windows.append([])
            used = 0
        windows[-1].append(i)
        used += size
    logits, token_probs = [], {i: [] for i in range(len(spans))}
    for window in windows:
        start, end = spans[window[0]][0], spans[window[-1]][1]
        encoding = tokenizer(
            question, context[start:end], return_offsets_mapping=True, return_tensors="pt"
        )
        offsets = encoding.pop("offset_mapping")[0]
        sequence = encoding.sequence_ids(0)
        with torch.inference_mode():
            ranking, pruning = model.model._heads(**encoding)
        keep = torch.softmax(pruning[0], dim=-1)[:, 1]
        logits.append(float(ranking[0, 0]))
        for position, (char, _) in enumerate(offsets.tolist()):
            if sequence[position] != 1:
                continue
            owner = next(i for i in window if spans[i][0] <= start + char < spans[i][1])
            token_probs[owner].append(float(keep[position]))
    score = 1.0 / (1.0 + np.exp(-max(logits)))
    return score, [float(np.mean(token_probs[i])) for i in range(len(spans))]


def test_fast_path_matches_one_window_at_a_time(tiny_model: PruningEncoder) -> None:
    """Batched process() (one tokenizer call per batch, windows sorted by length and padded,
    vectorised aggregation) gives, in the input order, what each window gives alone."""
    with torch.no_grad():  # random heads barely vary their outputs: sharpen them
        tiny_model.model.backbone.classifier.weight.mul_(300)
        tiny_model.model.pruning_head.classifier.weight.mul_(30)
    contexts = [
        " ".join(f"Sentence {i} is about the {'cat' if i % 3 else 'dog'}." for i in range(n))
        for n in (25, 1, 9, 40, 3)
    ] + [CONTEXT, "What is the capital? Paris is."]
    results = tiny_model.process(
        "where is the cat?",
        contexts,
        batch_size=4,
        threshold=0.5,
        return_sentence_probabilities=True,
    )
    for context, result in zip(contexts, results, strict=True):
        score, probabilities = one_window_at_a_time(tiny_model, "where is the cat?", context)
        assert result["reranking_score"] == pytest.approx(score, abs=1e-5)
        assert result["sentence_probabilities"] == pytest.approx(probabilities, abs=1e-5)
        keep = np.array(probabilities) > 0.5
        spans = split_sentences(context)
        assert result["kept_spans"] == kept_spans(context, spans, keep)


def test_pack_windows_keeps_whole_sentences() -> None:
    token_sentence = np.array([0, 0, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3, 3])
    assert pack_windows(token_sentence, 4, budget=5) == [(0, 5), (5, 6), (6, 11), (11, 13)]
    assert pack_windows(np.zeros(0, dtype=np.int64), 0, budget=5) == [(0, 0)]


sentence = st.text(alphabet="abc xyz", min_size=1, max_size=12).map(str.strip).filter(bool)
gap = st.sampled_from([" ", "  ", "\n", "\n\n", ""])


@given(
    pieces=st.lists(st.tuples(sentence, gap), min_size=0, max_size=8),
    keep=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_kept_spans_properties(pieces: list[tuple[str, str]], keep: list[bool]) -> None:
    text, spans = "", []
    for words, after in pieces:
        spans.append((len(text), len(text) + len(words)))
        text += words + (after or " ")
    mask = np.array(keep[: len(spans)], dtype=bool)
    kept = kept_spans(text, spans, mask)
    pruned = "".join(text[s:e] for s, e in kept)
    assert all(0 <= s < e <= len(text) for s, e in kept)
    assert all(a[1] <= b[0] for a, b in pairwise(kept))
    assert [text[s:e] for s, e in spans if any(a <= s and e <= b for a, b in kept)] == [
        text[s:e] for (s, e), k in zip(spans, mask, strict=True) if k
    ]
    assert len(pruned) <= len(text)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    context=st.text(alphabet=st.sampled_from(list("abc. ?!\nXYZ12")), max_size=120),
    threshold=st.floats(min_value=0.0, max_value=1.0),
)
def test_process_span_properties(
    tiny_model: PruningEncoder, context: str, threshold: float
) -> None:
    result = tiny_model.process("q?", context, threshold=threshold)
    spans = result["kept_spans"]
    assert all(0 <= s < e <= len(context) for s, e in spans)
    assert all(a[1] <= b[0] for a, b in pairwise(spans))
    assert result["pruned_context"] == "".join(context[s:e] for s, e in spans)
    if threshold == 0.0:
        assert result["pruned_context"] == context.strip()
    if threshold == 1.0:
        assert result["pruned_context"] == ""


def test_every_surface_returns_process_results(
    tiny_model: PruningEncoder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A result field means the same from process(), the service, the engines and the CLI: all
    are built by result_record."""
    from fastapi.testclient import TestClient

    from pruning_encoder.cli import main
    from pruning_encoder.engines.batch_pruner import BatchPruner
    from pruning_encoder.server import create_app

    question, contexts = "what is paris?", [CONTEXT, "The cat is a cat. It was in 1990."]
    expected = tiny_model.process(question, contexts, threshold=0.5)
    assert all(tuple(result) == RESULT_FIELDS for result in expected)
    with TestClient(create_app(tiny_model)) as client:
        body = {"question": question, "contexts": contexts, "threshold": 0.5}
        served = client.post("/prune", json=body).json()["results"]
    model = str(tmp_path / "model")
    tiny_model.save_pretrained(model)
    columns = BatchPruner(model, device="cpu", threshold=0.5).prune_columns(
        {"question": [question] * 2, "context": contexts}
    )
    engine = [{name: columns[name][i] for name in RESULT_FIELDS} for i in range(2)]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({"question": question, "context": c}) + "\n" for c in contexts)
    )
    assert main(["prune", "--model", model, "--input", str(pairs), "--threshold", "0.5"]) == 0
    written = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for surface in (served, engine, written):
        for got, want in zip(surface, expected, strict=True):
            assert got["pruned_context"] == want["pruned_context"]
            assert got["reranking_score"] == pytest.approx(want["reranking_score"], abs=1e-6)
            assert got["compression_rate"] == pytest.approx(want["compression_rate"])
            assert [tuple(span) for span in got["kept_spans"]] == want["kept_spans"]
