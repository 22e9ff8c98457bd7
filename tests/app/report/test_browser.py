"""The report page as a person opens it: headless Chromium loads every figure and thumbnail, the
audio players have their files, the example results carry their marks.

Needs Debian's ``chromium`` and ``chromium-driver`` (Selenium drives them; nothing is downloaded).
Set ``DCINET_REPORT_SCREENSHOT=docs/report.png`` to keep a screenshot of the page.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

BROWSER_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1280,1600", "--allow-file-access-from-files"]


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
def test_the_page_shows_every_figure_and_example(browser, tiny_report: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get((tiny_report / "index.html").resolve().as_uri())
    WebDriverWait(browser, 60).until(lambda d: d.execute_script(
        "return [...document.images].every(i => i.complete)"))
    broken = browser.execute_script(
        "return [...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.src)")
    assert broken == []
    assert len(browser.find_elements(By.CSS_SELECTOR, "#per-class img")) == 9
    assert len(browser.find_elements(By.CSS_SELECTOR, "#confusions img")) == 9
    assert browser.find_elements(By.CSS_SELECTOR, "#curves img")
    first = browser.find_element(By.CSS_SELECTOR, "#tables tbody td.num").text
    assert "[" in first and "]" in first  # the value with its interval

    # every audio player has a decodable file: its duration becomes known once loaded
    players = browser.find_elements(By.CSS_SELECTOR, "#examples audio")
    assert players
    browser.execute_script("document.querySelectorAll('#examples audio')"
                           ".forEach(a => { a.preload = 'auto'; a.load(); })")
    WebDriverWait(browser, 60).until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('#examples audio')]"
        ".every(a => a.readyState >= 1 && a.duration > 0)"))
    hits = browser.find_elements(By.CSS_SELECTOR, "#examples .hit")
    marks = {h.find_element(By.CSS_SELECTOR, ".mark").text for h in hits}
    assert marks <= {"✓", "✗"} and marks
    for hit in hits:
        relevant = "relevant" in hit.get_attribute("class").split()
        assert hit.find_element(By.CSS_SELECTOR, ".mark").text == ("✓" if relevant else "✗")
    if os.environ.get("DCINET_REPORT_SCREENSHOT"):  # the top: the tables with their intervals
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(os.environ["DCINET_REPORT_SCREENSHOT"])
