# Full-width CJK punctuation is what these tests are about, not a confusable typo.
# ruff: noqa: RUF001

from __future__ import annotations

import doctest
import re
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest
import sentencex
from hypothesis import given
from hypothesis import strategies as st

from pruning_encoder import sentence_splitter
from pruning_encoder.sentence_splitter import (
    SentenceSplitter,
    Span,
    detect_language,
    resolve_spans,
    spans_from_sentences,
    split_sentences,
)


def sentences(text: str, language: str = "auto") -> list[str]:
    return [text[start:end] for start, end in split_sentences(text, language)]


def returning(output: object) -> SentenceSplitter:
    """A splitter that ignores its text and returns ``output``, well-formed or not."""
    return cast("SentenceSplitter", lambda text: output)


def assert_valid_spans(text: str, spans: list[Span]) -> None:
    covered = [0] * len(text)
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(text)
        assert text[start:end] == text[start:end].strip()
        for index in range(start, end):
            covered[index] += 1
        previous_end = end
    for index, char in enumerate(text):
        assert covered[index] == 1 or (covered[index] == 0 and char.isspace())


def test_docstring_examples() -> None:
    assert doctest.testmod(sentence_splitter).failed == 0


def test_module_loads_standalone_with_the_standard_library_and_sentencex() -> None:
    # The file is shipped next to the weights and loaded through trust_remote_code.
    path = Path(sentence_splitter.__file__)
    site_packages = Path(sentencex.__file__).parent.parent
    script = (
        "import importlib.util, sys\n"
        f"sys.path.append({str(site_packages)!r})\n"
        f"spec = importlib.util.spec_from_file_location('splitter', {str(path)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert module.split_sentences('Hi. Bye.') == [(0, 3), (4, 8)]\n"
        "roots = {name.partition('.')[0] for name in sys.modules}\n"
        "print(sorted(roots - set(sys.stdlib_module_names) - {'splitter', '__main__'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "['sentencex']"


# --- detect_language ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "en"),
        ("The quick brown fox. It jumps.", "en"),
        ("今日は晴れです", "ja"),
        ("カタカナだけ", "ja"),
        ("東京タワー is tall.", "ja"),
        ("今天天气很好", "zh"),
        ("他说 OK", "zh"),
        ("English text with one character 中 in it, which is far below ten percent.", "en"),
        ("Hello world。", "zh"),
        ("Really！", "zh"),
        ("中文・English・English・English・English・English", "en"),
    ],
)
def test_detect_language(text: str, expected: str) -> None:
    assert detect_language(text) == expected


# --- split_sentences: general contract ----------------------------------------------------------


@pytest.mark.parametrize("text", ["", " ", "\n\n\t ", "\u3000\xa0"])
@pytest.mark.parametrize("language", ["auto", "en", "ja", "zh"])
def test_empty_or_whitespace_text(text: str, language: str) -> None:
    assert split_sentences(text, language) == []


@pytest.mark.parametrize("language", ["fr", "EN", "", "english"])
def test_unknown_language_raises(language: str) -> None:
    with pytest.raises(ValueError, match="language"):
        split_sentences("Hello.", language)
    with pytest.raises(ValueError, match="language"):
        split_sentences("", language)


def test_spans_point_into_original_text() -> None:
    text = "  Hello there.   How are you?  \n"
    spans = split_sentences(text)
    assert spans == [(2, 14), (17, 29)]
    assert_valid_spans(text, spans)


# --- English ----------------------------------------------------------------------------------


def test_basic_english() -> None:
    assert sentences("One. Two! Three? Four") == ["One.", "Two!", "Three?", "Four"]


def test_no_split_without_whitespace_or_before_lowercase() -> None:
    assert sentences("One.Two. three, four.") == ["One.Two. three, four."]


def test_split_before_digit_and_quote() -> None:
    assert sentences('It ended. 2024 was hard. "Yes," she said.') == [
        "It ended.",
        "2024 was hard.",
        '"Yes," she said.',
    ]


@pytest.mark.parametrize(
    "abbreviation",
    [
        *("Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "Sr.", "Jr.", "St.", "vs.", "etc.", "e.g."),
        *("i.e.", "cf.", "Inc.", "Ltd.", "Co.", "Corp.", "Jan.", "Feb.", "Mar.", "Apr.", "Jun."),
        *("Jul.", "Aug.", "Sep.", "Sept.", "Oct.", "Nov.", "Dec.", "U.S.", "U.K.", "E.G."),
    ],
)
def test_no_split_after_abbreviation(abbreviation: str) -> None:
    text = f"We met {abbreviation} Smith today. Then we left."
    assert sentences(text, "en") == [f"We met {abbreviation} Smith today.", "Then we left."]


@pytest.mark.parametrize("abbreviation", ["No.", "Fig.", "Vol.", "Eq.", "pp."])
def test_number_abbreviations_only_before_a_number(abbreviation: str) -> None:
    assert sentences(f"See {abbreviation} 3 for details. Next.") == [
        f"See {abbreviation} 3 for details.",
        "Next.",
    ]


def test_number_abbreviation_words_still_end_sentences() -> None:
    assert sentences("I said no. He left.") == ["I said no.", "He left."]


def test_abbreviation_in_brackets() -> None:
    assert sentences("It was signed (Dr. Who agreed). Fine.") == [
        "It was signed (Dr. Who agreed).",
        "Fine.",
    ]


def test_decimals_and_money() -> None:
    text = "Pi is 3.14 roughly. It cost $2.5 million. Growth was 0.5%. Done."
    assert sentences(text) == [
        "Pi is 3.14 roughly.",
        "It cost $2.5 million.",
        "Growth was 0.5%.",
        "Done.",
    ]


def test_initials() -> None:
    text = "J. R. R. Tolkien wrote it. George W. Bush read it. A. Smith agreed."
    assert sentences(text) == [
        "J. R. R. Tolkien wrote it.",
        "George W. Bush read it.",
        "A. Smith agreed.",
    ]


def test_urls_emails_and_versions() -> None:
    text = "Visit example.com/a.b?x=1 now. Mail me at jane.doe@mail.co.uk today. Run v1.2.3 please."
    assert sentences(text) == [
        "Visit example.com/a.b?x=1 now.",
        "Mail me at jane.doe@mail.co.uk today.",
        "Run v1.2.3 please.",
    ]


def test_url_at_sentence_end() -> None:
    assert sentences("Go to example.com. Then log in.") == ["Go to example.com.", "Then log in."]


def test_ellipsis() -> None:
    assert sentences("Well... maybe not. Wait... What?") == [
        "Well... maybe not.",
        "Wait...",
        "What?",
    ]
    assert sentences("Well… maybe not. I never meant that.... She left.") == [
        "Well… maybe not.",
        "I never meant that....",
        "She left.",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("他问：为什么？……没有人回答。", ["他问：为什么？……", "没有人回答。"]),
        ("他问：为什么？⋯⋯没有人回答。", ["他问：为什么？⋯⋯", "没有人回答。"]),
        ("彼は尋ねた：なぜ？……誰も答えなかった。", ["彼は尋ねた：なぜ？……", "誰も答えなかった。"]),
        ("なぜ？...誰も。", ["なぜ？...", "誰も。"]),
        ("He asked: why？……Nobody answered.", ["He asked: why？……", "Nobody answered."]),
        ("Why？…… Nobody.", ["Why？……", "Nobody."]),
        ("Why?…Nobody.", ["Why?…", "Nobody."]),
        ("He asked: why?... Nobody answered.", ["He asked: why?...", "Nobody answered."]),
        ("为什么？……", ["为什么？……"]),
    ],
)
def test_an_ellipsis_stays_with_the_sentence_it_ends(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("He said 'Go!' Then he ran.", ["He said 'Go!'", "Then he ran."]),
        ("He said “Why?” Nobody knew.", ["He said “Why?”", "Nobody knew."]),
        ("It works (really.) Yes, it does.", ["It works (really.) Yes, it does."]),
        (
            "He taught (he worked as an engineer.) at the school.",
            ["He taught (he worked as an engineer.) at the school."],
        ),
        ('First. "Second." (Third.)', ["First.", '"Second."', "(Third.)"]),
        ("Really?! Yes!!! Ok.", ["Really?!", "Yes!!!", "Ok."]),
    ],
)
def test_quotes_brackets_and_repeated_marks(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


# --- Line breaks, paragraphs and bullets -------------------------------------------------------


def test_paragraph_break_always_ends_sentence() -> None:
    assert sentences("this has no end\n\nand this continues") == [
        "this has no end",
        "and this continues",
    ]
    assert sentences("no end\r\n\r\nnext para") == ["no end", "next para"]
    assert sentences("no end\n   \n\tnext para") == ["no end", "next para"]


def test_wrapped_lines_are_joined() -> None:
    text = "This sentence is wrapped\nover several lines, because\nit is long. Next one."
    assert sentences(text) == [
        "This sentence is wrapped\nover several lines, because\nit is long.",
        "Next one.",
    ]
    assert sentences("a crlf\r\nwrapped line.") == ["a crlf\r\nwrapped line."]


def test_single_newline_ends_sentence_otherwise() -> None:
    text = "Title\nSome text here.\nAnother line\nthat wraps.\nResults: 42\nDone"
    assert sentences(text) == [
        "Title",
        "Some text here.",
        "Another line\nthat wraps.",
        "Results: 42",
        "Done",
    ]


def test_markdown_heading_line_ends_sentence() -> None:
    assert sentences("# introduction\nthe body starts here.") == [
        "# introduction",
        "the body starts here.",
    ]


def test_bullets_are_separate_sentences() -> None:
    text = (
        "Shopping list:\n- eggs\n* milk\n• bread and\nbutter\n+ tea\n"
        "1. first step\n2) second step\n10. tenth step\na) option a\nb. option b\n(c) option c"
    )
    assert sentences(text) == [
        "Shopping list:",
        "- eggs",
        "* milk",
        "• bread and\nbutter",
        "+ tea",
        "1. first step",
        "2) second step",
        "10. tenth step",
        "a) option a",
        "b. option b",
        "(c) option c",
    ]


def test_bullet_marker_stays_with_its_item() -> None:
    text = "1. First step. Then more.\n  2. Second step\nII. Roman numeral item"
    assert sentences(text) == [
        "1. First step.",
        "Then more.",
        "2. Second step",
        "II. Roman numeral item",
    ]


def test_lowercase_bullet_after_lowercase_line() -> None:
    assert sentences("choose one of\na) apples\nb) pears") == [
        "choose one of",
        "a) apples",
        "b) pears",
    ]


# --- Japanese and Chinese ----------------------------------------------------------------------


def test_japanese() -> None:
    text = "今日は晴れです。明日は雨でしょう！本当？はい!そうですか?わかりました"
    assert sentences(text) == [
        "今日は晴れです。",
        "明日は雨でしょう！",
        "本当？",
        "はい!",
        "そうですか?",
        "わかりました",
    ]


def test_japanese_closing_brackets() -> None:
    text = "彼は「行きます。」と言った。『本当！』（そう？）次の文。"
    assert sentences(text, "ja") == [
        "彼は「行きます。」",
        "と言った。",
        "『本当！』",
        "（そう？）次の文。",
    ]


def test_japanese_line_breaks_and_mixed_english() -> None:
    text = "見出し\n本文です。\n\nThis is English. 日本語に戻ります。えっと…それは"
    assert sentences(text) == [
        "見出し",
        "本文です。",
        "This is English.",
        "日本語に戻ります。",
        "えっと…それは",
    ]


def test_ascii_marks_before_ascii_text_do_not_split_in_cjk_mode() -> None:
    assert sentences("リンクはhttp://example.com/?q=1です。", "ja") == [
        "リンクはhttp://example.com/?q=1です。"
    ]


def test_chinese() -> None:
    text = "今天天气很好。你呢？我很好！真的吗?真的!他说：“好的。”然后走了"
    assert sentences(text) == [
        "今天天气很好。",
        "你呢？",
        "我很好！",
        "真的吗?",
        "真的!",
        "他说：“好的。”",
        "然后走了",
    ]


def test_chinese_semicolon_does_not_end_sentence() -> None:
    assert sentences("天很冷；风很大。走吧。") == ["天很冷；风很大。", "走吧。"]


def test_chinese_decimals_and_line_breaks() -> None:
    assert sentences("价格是3.14元。\n第二行\n第三行") == ["价格是3.14元。", "第二行", "第三行"]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_cjk_marks_end_sentences_in_every_language(language: str) -> None:
    assert sentences("Hello。World。", language) == ["Hello。", "World。"]


@pytest.mark.parametrize(
    "text",
    [
        "Mr. Smith went home. He slept.",
        "今日は晴れです。明日は雨。",
        "今天天气很好。你呢？",
        "中文 mixed with English. 再见。",
    ],
)
def test_auto_uses_detected_language(text: str) -> None:
    assert split_sentences(text) == split_sentences(text, detect_language(text))


# --- Field reports: boundaries other splitters get wrong ---------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "The bank moved its head office to the U.S.A. Its first branch opened in Ohio.",
            ["The bank moved its head office to the U.S.A.", "Its first branch opened in Ohio."],
        ),
        ("They flew to the U.K. They stayed.", ["They flew to the U.K.", "They stayed."]),
        ("Who funds the E.U. How much?", ["Who funds the E.U.", "How much?"]),
        ("I visited the U.S.A. last year.", ["I visited the U.S.A. last year."]),
        ("I work for the U.S. Government here.", ["I work for the U.S. Government here."]),
    ],
)
def test_dotted_acronym_ending_a_sentence(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Birds have beaks, feathers etc. The feather is light.",
            ["Birds have beaks, feathers etc.", "The feather is light."],
        ),
        (
            "It was sold to Acme Inc. The company grew.",
            ["It was sold to Acme Inc.", "The company grew."],
        ),
        (
            "He joined Briggs & Co. It closed in 1990.",
            ["He joined Briggs & Co.", "It closed in 1990."],
        ),
        ("Ask Jane and co. They know.", ["Ask Jane and co.", "They know."]),
        ("We met Dr. Smith and Ms. Jones.", ["We met Dr. Smith and Ms. Jones."]),
        ("As Lee et al. [2019] show, it holds.", ["As Lee et al. [2019] show, it holds."]),
        ("It is approx. 3.14. Yes.", ["It is approx. 3.14.", "Yes."]),
        ("See Eq. 3 and Fig. 4b. Next.", ["See Eq. 3 and Fig. 4b.", "Next."]),
        ("Were Jane and co. at the party?", ["Were Jane and co. at the party?"]),
        ("It was Martin Luther King Jr. He led.", ["It was Martin Luther King Jr.", "He led."]),
        ("It is on Main St. It is old.", ["It is on Main St.", "It is old."]),
    ],
)
def test_abbreviation_before_a_new_sentence_or_inside_one(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "The tower was completed in 1889.[3] It was designed by Eiffel.",
            ["The tower was completed in 1889.[3]", "It was designed by Eiffel."],
        ),
        ("It is old.[citation needed] It fell.", ["It is old.[citation needed]", "It fell."]),
        ("It is old.[a] It fell.", ["It is old.[a]", "It fell."]),
        ("It is old.[1][12] It fell.", ["It is old.[1][12]", "It fell."]),
        ("It is old.¹ It fell.", ["It is old.¹", "It fell."]),
        ("It is old.²³ It fell.", ["It is old.²³", "It fell."]),
        ("It is old.[note 2] It fell.", ["It is old.[note 2]", "It fell."]),
    ],
)
def test_citation_marker_stays_with_the_sentence_it_ends(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


@pytest.mark.parametrize(
    "markup", ["**Backups**", "*Backups*", "_Backups_", "`backup.sh`", "[Backups](b.md)"]
)
def test_sentence_starting_with_markdown(markup: str) -> None:
    text = f"The server restarts nightly. {markup} run at two."
    assert sentences(text) == ["The server restarts nightly.", f"{markup} run at two."]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1. The first item 2. The second item", ["1. The first item", "2. The second item"]),
        ("1. The first item. 2. The second item.", ["1. The first item.", "2. The second item."]),
        ("1) First 2) Second 3) Third", ["1) First", "2) Second", "3) Third"]),
        ("1.) First 2.) Second", ["1.) First", "2.) Second"]),
        ("a. The first item b. The second item", ["a. The first item", "b. The second item"]),
        ("a) apples b) pears c) plums", ["a) apples", "b) pears", "c) plums"]),
        ("• 9. Ninth item • 10. Tenth item", ["• 9. Ninth item", "• 10. Tenth item"]),
        (
            "Steps: 1. Buy a ticket 2. Take the lift",
            ["Steps:", "1. Buy a ticket", "2. Take the lift"],
        ),
        ("It has 2 doors. 3. The third is odd.", ["It has 2 doors.", "3. The third is odd."]),
        ("(1) first item (2) second item", ["(1) first item", "(2) second item"]),
        ("(a) apples (b) pears", ["(a) apples", "(b) pears"]),
        ("A. The first item B. The second item", ["A. The first item", "B. The second item"]),
        ("Options: A) yes B) no", ["Options:", "A) yes", "B) no"]),
        # Not enumerations: a lone number, numbers out of sequence, a decimal, an abbreviation.
        ("We won 3 to 1. 2 teams lost.", ["We won 3 to 1.", "2 teams lost."]),
        ("Rooms 1. and 3. are free.", ["Rooms 1. and 3. are free."]),
        ("It is approx. 3.14. Yes.", ["It is approx. 3.14.", "Yes."]),
        ("Plan a. is fine.", ["Plan a. is fine."]),
        ("A. B. Smith went home. He slept.", ["A. B. Smith went home.", "He slept."]),
        ("John F. Kennedy G. Bush", ["John F. Kennedy G. Bush"]),
    ],
)
def test_inline_enumeration_gives_one_sentence_per_item(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


# --- Scale ------------------------------------------------------------------------------------


def test_one_megabyte_of_english() -> None:
    paragraph = (
        'Dr. Smith paid $2.5 million on Jan. 5. He said "Stop." Then he left... and came back! '
        "Was it worth it? J. R. R. Tolkien wrote v1.2.3 of example.com.\n- a bullet item\n"
        "wrapped line that\ncontinues here.\n\n"
    )
    text = paragraph * (1_000_000 // len(paragraph))
    spans = split_sentences(text)
    assert len(spans) == 6 * (1_000_000 // len(paragraph))


@pytest.mark.parametrize(
    "text",
    [
        "." * 100_000,
        " " * 100_000 + "x",
        "A. " * 30_000,
        '."' * 50_000,
        "ab\n" * 30_000,
        "\n \n" * 30_000 + "x",
        "!?。" * 30_000,
        "a.  " * 30_000,
    ],
)
def test_adversarial_inputs(text: str) -> None:
    for language in ("en", "zh"):
        assert_valid_spans(text, split_sentences(text, language))


# --- spans_from_sentences ----------------------------------------------------------------------


def test_spans_from_sentences() -> None:
    text = "  First one.  Second one.\nThird."
    spans = spans_from_sentences(text, ["First one.", "  Second one.\n", "", "   ", "Third."])
    assert [text[start:end] for start, end in spans] == ["First one.", "Second one.", "Third."]


def test_spans_from_sentences_repeated_sentences() -> None:
    text = "Yes. No. Yes. Yes."
    assert spans_from_sentences(text, ["Yes.", "No.", "Yes.", "Yes."]) == [
        (0, 4),
        (5, 8),
        (9, 13),
        (14, 18),
    ]


def test_spans_from_sentences_not_found() -> None:
    message = "sentence 1 ('Missing one.') was not found in the context after offset 6"
    with pytest.raises(ValueError, match=re.escape(message)):
        spans_from_sentences("Found. Other.", ["Found.", "Missing one."])


def test_spans_from_sentences_out_of_order() -> None:
    with pytest.raises(ValueError, match=r"sentence 1 \('A\.'\) was not found .* offset 5"):
        spans_from_sentences("A. B.", ["B.", "A."])


def test_spans_from_sentences_long_sentence_preview() -> None:
    long_sentence = "word " * 30
    with pytest.raises(ValueError, match=r"sentence 0 \('word word .*\.\.\.'\)"):
        spans_from_sentences("Nothing here.", [long_sentence])


def test_spans_from_sentences_rejects_single_string() -> None:
    with pytest.raises(TypeError, match="sequence of strings"):
        spans_from_sentences("abc", "abc")


# --- resolve_spans -----------------------------------------------------------------------------


def test_resolve_spans_with_string_splitter() -> None:
    text = "One. Two. Three."
    assert resolve_spans(text, lambda t: [s + " " for s in t.split(" ")]) == [
        (0, 4),
        (5, 9),
        (10, 16),
    ]


def test_resolve_spans_with_span_splitter() -> None:
    text = "One. Two. Three."
    assert resolve_spans(text, returning([(0, 4), [5, 9], (10, 16)])) == [(0, 4), (5, 9), (10, 16)]
    assert resolve_spans(text, lambda t: []) == []
    assert resolve_spans(text, split_sentences) == split_sentences(text)


def test_resolve_spans_accepts_index_like_ints() -> None:
    class Index:
        def __init__(self, value: int) -> None:
            self.value = value

        def __index__(self) -> int:
            return self.value

    spans = resolve_spans("abc", returning([(Index(0), Index(3))]))
    assert spans == [(0, 3)]
    assert type(spans[0][0]) is int


def test_resolve_spans_string_not_found() -> None:
    with pytest.raises(ValueError, match=r"splitter.*sentence 0 \('Other\.'\) was not found"):
        resolve_spans("One.", lambda t: ["Other."])


@pytest.mark.parametrize(
    "output",
    [
        [(0, 3.0)],
        [(0, 1, 2)],
        [(0,)],
        [5],
        [(True, 2)],
        ["One.", (5, 8)],
        [(0, 4), "Two."],
        [None],
        [(0, 4), (4, 9), (-1, 2)],
        [(2, 2)],
        [(3, 1)],
        [(0, 100)],
        [(5, 9), (0, 4)],
        [(0, 5), (4, 9)],
        "One. Two.",
        None,
        42,
        {(0, 4)},
    ],
)
def test_resolve_spans_invalid_output(output: object) -> None:
    with pytest.raises(ValueError, match="splitter"):
        resolve_spans("One. Two.", returning(output))


# --- Properties --------------------------------------------------------------------------------

_ALPHABET = st.sampled_from(
    [
        *"aAbBzZ09 .!?…。！？；\"'“”()[]「」『』（）-*•⁃#,;:@/¹\t\n\r\u3000\xa0\u2029\u2028\x85",
        *(
            "Mr.",
            "e.g.",
            "U.S.",
            "3.14",
            " 1. ",
            " 2.) ",
            " b) ",
            "[3]",
            "approx.",
            "**",
            "\n\n",
            "\r\n",
            "- ",
            "日本",
            "中文",
            "ひら",
            "カナ",
        ),
    ]
)
_TEXT = st.lists(_ALPHABET, max_size=40).map("".join)
_LANGUAGE = st.sampled_from(["auto", "en", "ja", "zh"])


@given(text=_TEXT, language=_LANGUAGE)
def test_property_spans_cover_text(text: str, language: str) -> None:
    assert_valid_spans(text, split_sentences(text, language))


@given(text=st.text(max_size=60), language=_LANGUAGE)
def test_property_spans_cover_arbitrary_unicode(text: str, language: str) -> None:
    assert_valid_spans(text, split_sentences(text, language))


@given(text=_TEXT, language=_LANGUAGE)
def test_property_sentences_round_trip(text: str, language: str) -> None:
    spans = split_sentences(text, language)
    found = [text[start:end] for start, end in spans]
    assert spans_from_sentences(text, found) == spans
    assert resolve_spans(text, lambda t: found) == spans
    assert resolve_spans(text, lambda t: spans) == spans


@given(text=_TEXT)
def test_property_detect_language_is_a_supported_language(text: str) -> None:
    assert detect_language(text) in {"en", "ja", "zh"}
