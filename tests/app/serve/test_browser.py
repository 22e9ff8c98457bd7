"""End to end as a person uses it: headless Chromium opens the page, uploads an image, sees
ranked results (thumbnails, spectrograms with a play control, snippets), and a readable error.

Needs Debian's ``chromium`` and ``chromium-driver`` (Selenium drives them; nothing is downloaded).
Set ``DCINET_SCREENSHOT=docs/screenshot.png`` to keep the screenshot of the results.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dcinet.retrieval.embed import load_embeddings

BROWSER_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1280,1000"]


@pytest.fixture
def browser(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("no headless browser here: install the Debian packages chromium and "
                    "chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    yield driver
    driver.quit()


@pytest.mark.browser
@pytest.mark.slow
def test_upload_an_image_and_see_ranked_results(browser, server_url, searcher, tiny_embeddings,
                                               tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 60)
    image = Path(load_embeddings(tiny_embeddings, "image")[1][5]["path"])
    browser.get(f"{server_url}/")
    wait.until(lambda d: "classes" in d.find_element(By.ID, "status").text)
    assert "8 image, 8 audio, 8 text" in browser.find_element(By.ID, "status").text

    browser.find_element(By.ID, "query-image").send_keys(str(image))
    k = browser.find_element(By.ID, "k")
    k.clear()
    k.send_keys("12")
    browser.find_element(By.ID, "search-button").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .result")) == 12)
    wait.until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"))

    cards = browser.find_elements(By.CSS_SELECTOR, "#results .result")
    expected = searcher.search_image(image, k=12)
    for card, hit in zip(cards, expected, strict=True):
        assert card.get_attribute("data-modality") == hit.modality
        assert card.find_element(By.CSS_SELECTOR, ".rank").text == f"#{hit.rank}"
        assert card.find_element(By.CSS_SELECTOR, ".score").text == f"{hit.score:.4f}"
        assert card.find_element(By.CSS_SELECTOR, ".cls").text == hit.class_name.replace("_", " ")
        if hit.modality == "image":
            assert card.find_elements(By.TAG_NAME, "img")
        elif hit.modality == "audio":
            assert card.find_elements(By.TAG_NAME, "img") and card.find_elements(By.TAG_NAME, "audio")
        else:
            assert card.find_element(By.CSS_SELECTOR, ".snippet").text == hit.text
    assert browser.find_element(By.ID, "error").is_displayed() is False
    browser.save_screenshot(str(tmp_path / "screenshot.png"))
    if os.environ.get("DCINET_SCREENSHOT"):
        browser.save_screenshot(os.environ["DCINET_SCREENSHOT"])
    assert (tmp_path / "screenshot.png").stat().st_size > 10_000

    wanted = searcher.classes[1]  # the class box: only that class's items, as the API ranks them
    browser.find_element(By.ID, "class-name").send_keys(wanted)
    browser.find_element(By.ID, "search-button").click()
    expected = searcher.search_image(image, k=12, class_name=wanted)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .result")) == len(expected))
    cards = browser.find_elements(By.CSS_SELECTOR, "#results .result")
    assert [c.find_element(By.CSS_SELECTOR, ".score").text for c in cards] == [f"{h.score:.4f}" for h in expected]
    assert {c.find_element(By.CSS_SELECTOR, ".cls").text for c in cards} == {wanted.replace("_", " ")}
    assert f"class {wanted}" in browser.find_element(By.ID, "summary").text
    browser.find_element(By.ID, "class-name").clear()

    browser.find_element(By.CSS_SELECTOR, "input[name=kind][value=text]").click()
    Select(browser.find_element(By.ID, "target")).select_by_value("text")
    browser.find_element(By.ID, "search-button").click()  # the description is still empty
    wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert browser.find_element(By.ID, "error").text == "the text query is empty"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#results .result")) == len(expected)  # kept
