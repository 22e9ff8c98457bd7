"""``dcinet report``: the page from a run (every section) and from saved features (no examples),
its numbers equal to evaluate's, refusals before any work."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dcinet.app.cli import main


class _Links(HTMLParser):
    """The src of every img / audio element, and the text of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.sources, self.text = [], []

    def handle_starttag(self, tag, attrs):
        if tag in ("img", "audio"):
            self.sources.append((tag, dict(attrs)["src"]))

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: Path) -> _Links:
    links = _Links()
    links.feed(page.read_text(encoding="utf-8"))
    return links


def test_report_of_a_run_has_every_section(tiny_report: Path, tiny_run: Path,
                                           tiny_builtin: Path, tmp_path: Path):
    page = tiny_report / "index.html"
    html = page.read_text(encoding="utf-8")
    for section in ("tables", "per-class", "confusions", "curves", "examples"):
        assert f"id='{section}'" in html
    links = _parse(page)
    for _, src in links.sources:  # every picture and sound the page names is there
        assert (tiny_report / src).stat().st_size > 0, src
    kinds = {tag for tag, _ in links.sources}
    assert kinds == {"img", "audio"}
    names = {Path(src).name for _, src in links.sources}
    for d in ("i2t", "a2all"):
        assert f"class_ap_{d}.png" in names and f"confused_{d}.png" in names
    assert "losses.png" in names
    assert "no val_* columns" in html  # the tiny run does not validate
    # one typical and one hard query per modality (unless they coincide), 4 results each
    examples = re.findall(r"<div class='example' data-modality='(\w+)'>", html)
    assert {"image", "text", "audio"} == set(examples) and 3 <= len(examples) <= 6
    marks = html.count("<span class='mark'>✓</span>") + html.count("<span class='mark'>✗</span>")
    assert marks == 4 * len(examples)
    assert "class='snippet'" in html

    # the numbers on the page are evaluate's (same features, same bootstrap)
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(tiny_run), "--data", str(tiny_builtin), "--json", str(out),
                 "--bootstrap", "200"]) == 0
    expected, reported = json.loads(out.read_text()), json.loads(
        (tiny_report / "results.json").read_text())
    assert reported["metrics"] == expected["metrics"]
    assert reported["intervals"] == expected["intervals"]
    lo, hi = expected["intervals"]["i2t"]["mAP"]
    text = " ".join(_parse(page).text)
    assert f"[{lo:.3f}".replace("0.", ".", 1) in text and f"{hi:.3f}]".replace("0.", ".", 1) in text


def test_report_from_saved_features_leaves_the_examples_out(tiny_run: Path, tiny_builtin: Path,
                                                           tiny_report: Path, tmp_path: Path):
    features = tmp_path / "features"
    assert main(["evaluate", str(tiny_run), "--data", str(tiny_builtin), "--save-features",
                 str(features), "--bootstrap", "0"]) == 0
    out = tmp_path / "from-features"
    assert main(["report", "--features", str(features), "--out", str(out),
                 "--bootstrap", "200"]) == 0
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "Example queries are left out: saved features hold no media" in html
    assert "class='example'" not in html and not (out / "media").exists()
    assert "No training curves" in html
    # tables, intervals, per-class AP and confusions as from the run itself
    assert json.loads((out / "results.json").read_text())["intervals"] == json.loads(
        (tiny_report / "results.json").read_text())["intervals"]
    assert (out / "figures" / "confused_t2i.png").exists()
    assert "Marsh Warbler" in html  # class names from classes.json
    # with the run directory too: its curves come back
    both = tmp_path / "both"
    assert main(["report", str(tiny_run), "--features", str(features), "--out", str(both),
                 "--bootstrap", "0"]) == 0
    assert (both / "figures" / "losses.png").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["report", "--out", "X"], "needs a RUN"),
    (["report", "--features", "{tmp}", "--out", "X"], "no <modality>_features.npy"),
    (["report", "--features", "{tmp}", "--out", "X", "--bootstrap", "-2"], "--bootstrap"),
    (["report", "--features", "{tmp}", "--out", "X", "-k", "0"], "-k"),
])
def test_refusals_are_one_line(argv, message, tmp_path: Path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
