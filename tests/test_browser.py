"""The service's page (``GET /``) and a ``prune --html`` file in a real headless Chromium.

Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them when missing), driven by
Selenium through the system's chromedriver: no browser is ever downloaded. The tests skip only
when Chromium is absent outside CI; under ``CI=true`` they fail instead. Each test saves a
screenshot under its tmp dir; with ``SCREENSHOTS=DIR`` set, also into DIR (the README's
``docs/*.png`` are made that way).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_server import serving

from pruning_encoder import PruningEncoder
from pruning_encoder.cli import main
from pruning_encoder.highlight import marked_spans

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# No network, no background services, no first-run work: the page must stand on its own.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1000,1250",
)
QUESTION = "When did the Louvre open as a museum?"
CONTEXT = (
    "Paris is the capital and largest city of France. The Seine flows through the city from "
    "east to west. The Louvre, which opened as a museum in 1793, is the most-visited art museum "
    "in the world. The cheetah is a large cat native to Africa."
)
PALACE = (
    "The Louvre Palace was a royal residence. Louis XIV moved the court to Versailles in 1682. "
    "In 1793, during the French Revolution, the palace opened as a public museum. Today it "
    "houses the Mona Lisa."
)
OTHER = "The cheetah is the fastest land animal. It lives in Africa & Iran, <not> in Paris."
WAIT_S = 60
# Resolved now: the --html test runs in its tmp dir.
SCREENSHOTS = Path(os.environ["SCREENSHOTS"]).resolve() if os.environ.get("SCREENSHOTS") else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if os.environ.get("CI"):
            pytest.fail(f"CI needs Chromium and chromedriver ({CHROMIUM}, {CHROMEDRIVER})")
        pytest.skip("Chromium is not installed: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a driver or browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in CHROMIUM_ARGS:
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def model() -> PruningEncoder:
    return PruningEncoder.from_pretrained("minilm-l6-wiki", device="cpu")


def wait_for(driver: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(condition)


def marks(driver: Any) -> list[list[str]]:
    """The marked texts of each document shown, in order."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#results .document')].map("
        "d => [...d.querySelectorAll('mark')].map(m => m.textContent))"
    )


def expected_marks(model: PruningEncoder, contexts: list[str], threshold: float) -> list[list[str]]:
    """What ``highlight()`` marks in each context at ``threshold``: the Python rule."""
    results = model.process(QUESTION, contexts, threshold=threshold)
    return [
        [context[s:e] for s, e in marked_spans(context, result["kept_spans"])]
        for context, result in zip(contexts, results, strict=True)
    ]


def set_slider(driver: Any, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    slider = driver.find_element(By.ID, "threshold")
    if value in ("0", "1"):  # a real key press: the range input's own input event
        slider.send_keys(Keys.HOME if value == "0" else Keys.END)
    else:
        driver.execute_script(
            "arguments[0].value = arguments[1];"
            "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
            slider,
            value,
        )


def screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if SCREENSHOTS is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / name)
    return path


def test_service_page_prunes_and_follows_the_slider(
    browser: Any, model: PruningEncoder, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    default = float(model.config.default_threshold)
    with serving(model) as url:
        browser.get(url + "/")
        wait_for(
            browser, lambda d: d.find_element(By.ID, "threshold-value").text == f"{default:.2f}"
        )
        browser.find_element(By.ID, "question").send_keys(QUESTION)
        browser.find_element(By.CSS_SELECTOR, "#contexts textarea").send_keys(CONTEXT)
        for text in (PALACE, OTHER):
            browser.find_element(By.ID, "add").click()
            browser.find_elements(By.CSS_SELECTOR, "#contexts textarea")[-1].send_keys(text)
        browser.find_element(By.ID, "prune").click()
        wait_for(
            browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .document")) == 3
        )

        contexts = [CONTEXT, PALACE, OTHER]
        assert marks(browser) == expected_marks(model, contexts, default)
        assert any(marks(browser))  # the Louvre sentence, at least, is kept
        headings = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".heading")]
        scores = [r["reranking_score"] for r in model.process(QUESTION, contexts)]
        assert headings == [
            f"context {i + 1} · reranking score {s:.3f}" for i, s in enumerate(scores)
        ]
        hover = browser.find_element(By.CSS_SELECTOR, ".sentence").get_attribute("title")
        assert hover.startswith("keep-probability 0.")
        set_slider(browser, "0")  # every sentence kept: each text one mark, whole
        assert marks(browser) == [[text] for text in contexts]
        set_slider(browser, "1")  # none kept
        assert marks(browser) == [[], [], []]
        set_slider(browser, "0.20")
        assert marks(browser) == expected_marks(model, contexts, 0.2)
        screenshot(browser, tmp_path, "service-page.png")

        question = browser.find_element(By.ID, "question")
        browser.execute_script("arguments[0].value = arguments[1]", question, "museum " * 600)
        browser.find_element(By.ID, "prune").click()
        error = wait_for(browser, lambda d: d.find_element(By.ID, "error").text)
        assert error.startswith("The question (and title) take") and "at most" in error


def test_html_file_shows_the_documents_and_follows_the_slider(
    browser: Any, model: PruningEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selenium.webdriver.common.by import By

    monkeypatch.chdir(tmp_path)
    Path("palace.txt").write_text(PALACE, encoding="utf-8")
    Path("cheetah.txt").write_text(OTHER, encoding="utf-8")
    page = tmp_path / "page.html"
    argv = ["prune", "--question", QUESTION, "--html", str(page), "palace.txt", "cheetah.txt"]
    assert main(argv) == 0
    html = page.read_text(encoding="utf-8")
    assert "<script src" not in html and "<link" not in html and "url(" not in html

    browser.get(page.as_uri())
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .document")) == 2)
    default = float(model.config.default_threshold)
    contexts = [PALACE, OTHER]
    assert marks(browser) == expected_marks(model, contexts, default)
    assert browser.find_element(By.ID, "question").text == f"Question: {QUESTION}"
    headings = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".heading")]
    scores = [r["reranking_score"] for r in model.process(QUESTION, contexts)]
    assert headings == [
        f"{name} · reranking score {score:.3f}"
        for name, score in zip(["palace.txt", "cheetah.txt"], scores, strict=True)
    ]

    set_slider(browser, "0")
    assert marks(browser) == [[text] for text in contexts]
    assert stats_text(browser)[1].startswith(f"kept {len(OTHER)} of {len(OTHER)} characters")
    set_slider(browser, "1")
    assert marks(browser) == [[], []]
    assert stats_text(browser)[1].startswith(f"kept 0 of {len(OTHER)} characters, 0 of ")
    set_slider(browser, "0.50")
    assert marks(browser) == expected_marks(model, contexts, 0.5)
    kept = len(model.process(QUESTION, PALACE, threshold=0.5)["pruned_context"])
    assert stats_text(browser)[0].startswith(f"kept {kept} of {len(PALACE)} characters, ")
    assert stats_text(browser)[0].endswith(" tokens")
    screenshot(browser, tmp_path, "html-report.png")


def stats_text(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".stats")]
