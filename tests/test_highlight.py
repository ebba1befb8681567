"""The highlighting rule (pruning_encoder.highlight) and its command-line surfaces."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pruning_encoder import PruningEncoder, highlight
from pruning_encoder.cli import main
from pruning_encoder.cli.common import ANSI_MARK, ANSI_RESET
from pruning_encoder.context_pruning import Document, kept_spans, prune_group
from pruning_encoder.highlight import marked_spans
from pruning_encoder.sentence_splitter import split_sentences

TEXT = "Alpha is one. Beta is two.  Gamma is three. Delta is four."


def kept(
    text: str, keep: list[bool], spans: list[tuple[int, int]] | None = None
) -> dict[str, object]:
    """A result whose kept_spans come from process()'s own rule."""
    spans = split_sentences(text) if spans is None else spans
    assert len(spans) == len(keep)
    return {"kept_spans": kept_spans(text, spans, np.array(keep))}


def untagged(text: str, pre: str = "<mark>", post: str = "</mark>") -> str:
    return text.replace(pre, "").replace(post, "")


def test_adjacent_kept_sentences_share_one_mark_and_whitespace_stays_outside() -> None:
    result = kept(TEXT, [True, True, False, True])
    assert highlight(result, TEXT) == (
        "<mark>Alpha is one. Beta is two.</mark>  Gamma is three. <mark>Delta is four.</mark>"
    )
    assert untagged(highlight(result, TEXT)) == TEXT


def test_every_or_no_sentence_kept() -> None:
    assert highlight(kept(TEXT, [True] * 4), TEXT) == f"<mark>{TEXT}</mark>"
    assert highlight(kept(TEXT, [False] * 4), TEXT) == TEXT
    assert highlight({"kept_spans": []}, "") == ""


def test_spans_at_the_edges_of_the_context() -> None:
    text = "  First one.\nLast one.\n"
    result = kept(text, [True, True])
    assert highlight(result, text, pre_tag="[[", post_tag="]]") == "  [[First one.\nLast one.]]\n"


def test_a_kept_title_is_marked_with_the_sentence_that_brought_it() -> None:
    text = "Louvre. It rains in Paris. The Louvre opened in 1793."
    document = Document("When?", text, split_sentences(text), first_sentence_is_title=True)
    (result,) = prune_group(
        None,  # type: ignore[arg-type]  # no token budget: the tokenizer is not used
        [document],
        [0.9],
        [np.array([0.0, 0.1, 0.8])],
        threshold=0.5,
    )
    assert (
        highlight(result, text)
        == "<mark>Louvre.</mark> It rains in Paris. <mark>The Louvre opened in 1793.</mark>"
    )


def test_cjk_text() -> None:
    text = "東京は日本の首都です。大阪は大きい。京都は古い。"
    result = kept(text, [False, True, False])
    assert (
        highlight(result, text) == "東京は日本の首都です。<mark>大阪は大きい。</mark>京都は古い。"
    )


def test_html_escapes_the_text_never_the_tags() -> None:
    text = 'Use a < b & c. Write "<b>" tags. Done.'
    result = kept(text, [False, True, False], [(0, 14), (15, 32), (33, 38)])
    assert highlight(result, text) == 'Use a < b & c. <mark>Write "<b>" tags.</mark> Done.'
    assert highlight(result, text, html=True) == (
        "Use a &lt; b &amp; c. <mark>Write &quot;&lt;b&gt;&quot; tags.</mark> Done."
    )


def test_spans_that_do_not_fit_are_refused() -> None:
    with pytest.raises(ValueError, match="pre_tag and post_tag go together"):
        highlight({"kept_spans": [(0, 1)]}, "abc", pre_tag="[[")
    with pytest.raises(ValueError, match="pre_tag and post_tag go together"):
        highlight({"kept_spans": [(0, 1)]}, "abc", post_tag="]]")
    with pytest.raises(ValueError, match="has no kept_spans"):
        highlight({"pruned_context": "x"}, "x")
    with pytest.raises(ValueError, match=r"kept span \[0, 9\] does not fit a context of 3"):
        highlight({"kept_spans": [(0, 9)]}, "abc")
    with pytest.raises(ValueError, match="after the previous span"):
        marked_spans("abcdef", [(3, 5), (0, 2)])


def test_process_results_highlight_back_to_the_context(tiny_model: PruningEncoder) -> None:
    text = "Paris is the capital of France.\n\nCats purr. It was in the city."
    for threshold in (0.0, 0.3, 0.5, 0.7, 1.0):
        result = tiny_model.process("what is the capital?", text, threshold=threshold)
        shown = highlight(result, text)
        assert untagged(shown) == text
        inside = re.findall("<mark>(.*?)</mark>", shown, flags=re.S)
        assert all(piece == piece.strip() for piece in inside)  # whitespace stays outside
        assert re.sub(r"\s", "", "".join(inside)) == re.sub(r"\s", "", result["pruned_context"])


# --------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def model_dir(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("highlight") / "model"
    PruningEncoder(tiny_backbone, device="cpu").save_pretrained(directory)
    return str(directory)


CONTEXT = "Paris is the capital of France. Cats purr.  It was in the city."


def test_prune_highlight_brackets_when_not_a_terminal(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "context.txt"
    path.write_text(CONTEXT, encoding="utf-8")
    base = ["prune", "--model", model_dir, "--question", "capital?", "--highlight", str(path)]
    assert main([*base, "--threshold", "0"]) == 0
    assert capsys.readouterr().out == f"[[{CONTEXT}]]\n"
    assert main([*base, "--threshold", "1"]) == 0
    assert capsys.readouterr().out == f"{CONTEXT}\n"
    assert main([*base, "--threshold", "0", "--color", "always"]) == 0
    assert capsys.readouterr().out == f"{ANSI_MARK}{CONTEXT}{ANSI_RESET}\n"


def test_prune_highlight_several_files_with_their_scores(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text(CONTEXT, encoding="utf-8")
    second.write_text("Cats purr.", encoding="utf-8")
    argv = ["prune", "--model", model_dir, "--question", "capital?", "--highlight"]
    assert main([*argv, "--threshold", "0", "--color", "never", str(first), str(second)]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(
        rf"== {re.escape(str(first))} \(score 0\.\d{{3}}\) ==\n\[\[{re.escape(CONTEXT)}\]\]\n\n"
        rf"== {re.escape(str(second))} \(score 0\.\d{{3}}\) ==\n\[\[Cats purr\.\]\]\n",
        out,
    )


def test_prune_html_writes_one_self_contained_page(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "context.txt"
    path.write_text("A </script> & <b>x</b>. Cats purr.", encoding="utf-8")
    page = tmp_path / "page.html"
    argv = ["prune", "--model", model_dir, "--question", "capital?", "--html", str(page)]
    assert main([*argv, str(path)]) == 0
    assert capsys.readouterr().out == ""
    html = page.read_text(encoding="utf-8")
    assert html.count("</script>") == 2  # the data's own "</script>" is escaped
    assert "http://" not in html and "https://" not in html and "<link" not in html
    assert '"probabilities": [' in html and '"tokens": [' in html


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--input", "x.jsonl", "--highlight"], "--highlight and --html go with --question"),
        (["--question", "q", "--highlight", "--json"], "--json prints the result: drop it"),
        (["--question", "q", "--html", "p.html", "--json"], "--json prints the result: drop it"),
        (["--question", "q", "a.txt", "b.txt"], "several context FILEs go with --highlight"),
        (["--question", "q", "--html", "p.html", "--max-tokens", "5"], "--max-tokens does not"),
    ],
)
def test_prune_refuses_highlight_options_that_do_not_fit(
    model_dir: str, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prune", "--model", model_dir, *extra]) == 2
    assert capsys.readouterr().err.startswith(f"error: {message}")


def test_color_auto_follows_the_terminal_and_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    from pruning_encoder.cli.common import use_color

    class Terminal:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_color("auto", Terminal(True))  # type: ignore[arg-type]
    assert not use_color("auto", Terminal(False))  # type: ignore[arg-type]
    assert use_color("always", Terminal(False))  # type: ignore[arg-type]
    assert not use_color("never", Terminal(True))  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color("auto", Terminal(True))  # type: ignore[arg-type]
