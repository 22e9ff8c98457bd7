"""The user guide cannot drift from the code: its generated references (config keys, the command
line) match what ``tools/gen_reference.py`` makes of the code now, and every relative link and
``#anchor`` of README.md and docs/*.md resolves."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path

import pytest

from dcinet.config import Config

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _load_tool():
    spec = importlib.util.spec_from_file_location("gen_reference", REPO / "tools" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_tool()


@pytest.mark.parametrize("name", sorted(gen.GENERATORS))
def test_the_generated_reference_matches_the_code(name):
    path, generate = gen.GENERATORS[name]
    assert gen.render(path, name, generate()) == path.read_text(encoding="utf-8"), (
        f"{path.relative_to(REPO)} is out of date with the code: run `{gen.COMMAND}`")


def test_every_config_key_has_one_row_with_its_default_and_rule():
    from dcinet.config import RULES

    text = gen.config_reference()
    for f in dataclasses.fields(Config):
        rows = [line for line in text.splitlines() if line.startswith(f"| `{f.name}` |")]
        assert len(rows) == 1, f.name
        default = gen.yaml_value(getattr(Config(), f.name))
        assert f"| `{gen.cell(default)}` |" in rows[0], f.name
        assert gen.cell(RULES[f.name][1]) in rows[0], f.name


def test_config_comments_inline_continued_sections_and_preambles():
    source = '''
@dataclass
class Config:
    """doc"""

    # --- first part ---
    a: int = 1  # the a key
    # and more about a
    b: str = "x"
    # a preamble of c, not b's description
    c: list[int] = field(default_factory=list)  # c | its pipe
    # --- second part ---
    d: bool = True


RULES = {
    "a": _COUNT,  # and >= b
    "b": _TEXT,
    # about c and d
    "c": (_names,
          "a list"),  # spread over
    # two lines
    "d": _FLAG,
}
'''
    described, sections, notes = gen.config_comments(source)
    assert described == {"a": "the a key and more about a", "b": "", "c": "c | its pipe", "d": ""}
    assert sections == {"a": "first part", "b": "first part", "c": "first part", "d": "second part"}
    assert notes == {"a": "and >= b", "b": "", "c": "spread over two lines", "d": ""}


def test_cells_escape_pipes_and_tags_outside_code_spans():
    assert gen.cell("none | cmsi") == "none \\| cmsi"
    assert gen.cell("ROOT/<modality>/ and `<modality>`\n  a & b") == \
        "ROOT/&lt;modality&gt;/ and `<modality>` a &amp; b"


def test_check_names_the_stale_file_and_the_command(tmp_path, monkeypatch, capsys):
    page = tmp_path / "configuration.md"
    begin, end = gen._markers("config-keys")
    page.write_text(f"# Configuration\n\n{begin}\n\nold table\n{end}\n", encoding="utf-8")
    monkeypatch.setattr(gen, "GENERATORS", {"config-keys": (page, lambda: "new table\n")})
    monkeypatch.setattr(gen, "REPO", tmp_path)
    assert gen.main(["--check"]) == 1
    assert capsys.readouterr().err == \
        f"configuration.md is out of date with the code: run `{gen.COMMAND}`\n"
    assert "old table" in page.read_text()
    assert gen.main([]) == 0 and gen.main(["--check"]) == 0
    assert page.read_text(encoding="utf-8") == f"# Configuration\n\n{begin}\n\nnew table\n\n{end}\n"


# --- links ------------------------------------------------------------------------------------

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)=\"([^\"]+)\"", re.I)
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.I)


def _prose(text: str) -> str:
    """Markdown without fenced code blocks and code spans (their brackets are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(text: str) -> list[str]:
    body = _prose(text)
    return LINK.findall(body) + REFERENCE.findall(body) + HTML_LINK.findall(body)


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors of a page (a repeated slug gets -1, -2, ...) and HTML anchors."""
    seen: dict[str, int] = {}
    out = set(HTML_ANCHOR.findall(text))
    for _, heading in HEADING.findall(FENCE.sub("", text)):
        slug = gen.slug(heading)
        out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return out


def test_the_link_reader_on_hand_written_markdown():
    text = ("# Install `dcinet`\n\n## Install dcinet\n\nSee [a](docs/a.md#x-y), ![pic](p.png), "
            "[b] and `[not](a/link.md)`.\n\n```\n[nor](this.md)\n# not a heading\n```\n\n"
            "[b]: docs/b.md\n<img src=\"docs/c.png\">\n### The CMSI box: 50-60 % (×2)\n"
            "## `GET /media/<m>/<row>` <em>and</em> more\n")
    assert links(text) == ["docs/a.md#x-y", "p.png", "docs/b.md", "docs/c.png"]
    assert anchors(text) == {"install-dcinet", "install-dcinet-1", "the-cmsi-box-50-60--2",
                             "get-mediamrow-and-more"}


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in links(text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            where = f"{page.relative_to(REPO)}: {target}"
            if not path.is_relative_to(REPO):
                broken.append(f"{where} (outside the repository)")
            elif not path.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path.read_text(encoding="utf-8")):
                broken.append(f"{where} (no such heading in {path.relative_to(REPO)})")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_user_guide_pages_exist_and_are_linked_from_the_readme():
    readme = REPO / "README.md"
    linked = {(readme.parent / t.partition("#")[0]).resolve() for t in links(readme.read_text())}
    for name in ("data", "configuration", "cli", "http-api", "outputs", "method", "evaluation",
                 "reproduce-paper", "experiments", "benchmarks", "architecture"):
        page = REPO / "docs" / f"{name}.md"
        assert page.exists() and page.resolve() in linked, name
    assert len(readme.read_text().splitlines()) <= 160
