"""The report's HTML page: one self-contained file beside its figures and media folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from dcinet.app.report.examples import Example
from dcinet.data.records import Sample
from dcinet.retrieval.metrics import definitions
from dcinet.retrieval.result import RetrievalResult

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5rem; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .85rem; }
th, td { border: 1px solid #ccc; padding: .2rem .45rem; text-align: left; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { font-weight: bold; text-align: left; }
.tables { display: flex; flex-wrap: wrap; gap: 0 1.5rem; align-items: flex-start; }
.note { color: #555; font-size: .9rem; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; } .figures img { width: 580px; }
.example { display: flex; gap: .8rem; border: 1px solid #ddd; border-radius: 6px; padding: .6rem;
           margin: .8rem 0; } .query { border: 2px solid #4c72b0; }
.hits { display: flex; flex-wrap: wrap; gap: .5rem; }
.item { width: 178px; border: 1px solid #eee; padding: .3rem; font-size: .8rem; }
.item img { max-width: 170px; max-height: 150px; display: block; }
.item audio { width: 170px; } .relevant { background: #eefbea; } .irrelevant { background: #fdeeee; }
.mark { font-weight: bold; font-size: 1rem; } .relevant .mark { color: #1a7f37; }
.irrelevant .mark { color: #c62828; } .snippet { font-style: italic; }
"""


@dataclass
class Page:
    """What the page shows.

    Attributes:
        title: the heading; source: what was evaluated, in words.
        result: the evaluation (tables, intervals, per-class AP).
        class_figures / confusion_figures: direction -> PNG file name (relative to the page).
        confused: direction -> [(query class, intruding class, share)], largest first.
        curves: name (``losses``, ``validation``) -> PNG file name; curves_note says why some
            are missing.
        examples: the example queries, or None when left out (examples_note says why);
        media: sample -> :meth:`~dcinet.app.report.examples.MediaWriter.media`.
    """

    title: str
    source: str
    result: RetrievalResult
    class_figures: dict[str, str]
    confusion_figures: dict[str, str]
    confused: dict[str, list[tuple[str, str, float]]]
    curves: dict[str, str] = field(default_factory=dict)
    curves_note: str = ""
    examples: list[Example] | None = None
    examples_note: str = ""
    media: dict[Sample, dict] = field(default_factory=dict)


def render(page: Page) -> str:
    """The HTML document of ``page``."""
    body = [f"<h1>{escape(page.title)}</h1>", f"<p class='note'>{escape(page.source)}</p>",
            _tables(page.result), _per_class(page), _confusions(page), _curves(page),
            _examples(page)]
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{escape(page.title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _table(header: list[str], rows: list[list[str]], caption: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in rows)
    caption = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(cell: str) -> str:
    """A cell; numbers (and numbers with intervals) right-aligned."""
    numeric = cell[:1].isdigit() or cell[:1] in ".+-"
    return f"<td class='num'>{escape(cell)}</td>" if numeric else f"<td>{escape(cell)}</td>"


def _tables(result: RetrievalResult) -> str:
    parts = ["<section id='tables'><h2>Retrieval</h2>"]
    for title, header, rows in result.tables():
        parts += [f"<h3>{escape(title)}</h3>", _table(header, rows)]
    terms = "".join(f"<li><b>{escape(m)}</b>: {escape(t)}</li>"
                    for m, t in definitions(result.metric_names).items())
    parts += [f"<p class='note'>{escape(result.notes())}</p>", f"<ul class='note'>{terms}</ul>",
              "</section>"]
    return "".join(parts)


def _figures(files: dict[str, str], alt: str) -> str:
    return "<div class='figures'>" + "".join(
        f"<img src='{escape(f)}' alt='{escape(alt.format(d))}'>" for d, f in files.items()
    ) + "</div>"


def _per_class(page: Page) -> str:
    return ("<section id='per-class'><h2>AP per class</h2><p class='note'>Mean AP of each "
            "class's queries, worst classes first; the bars carry the bootstrap interval.</p>"
            + _figures(page.class_figures, "{} AP per class") + "</section>")


def _confusions(page: Page) -> str:
    parts = ["<section id='confusions'><h2>Most confused classes</h2><p class='note'>A query "
             "with R relevant items would fill its first R ranks with them. The share of a class "
             "in those top-R windows, averaged over the queries of the query class, says how "
             "much of the window it takes; the pairs below are the largest shares of another "
             "class.</p>", _figures(page.confusion_figures, "{} confused pairs")]
    parts.append("<div class='tables'>")
    for direction, pairs in page.confused.items():
        rows = [[a.replace("_", " "), b.replace("_", " "), f"{s:.3f}"] for a, b, s in pairs]
        parts.append(_table(["query class", "ranks above its relevant items", "share"], rows,
                            caption=direction))
    return "".join(parts) + "</div></section>"


def _curves(page: Page) -> str:
    note = f"<p class='note'>{escape(page.curves_note)}</p>" if page.curves_note else ""
    return ("<section id='curves'><h2>Training</h2>" + note
            + _figures(page.curves, "{} curves") + "</section>")


def _examples(page: Page) -> str:
    head = "<section id='examples'><h2>Example queries</h2>"
    if page.examples is None:
        return head + f"<p class='note'>{escape(page.examples_note)}</p></section>"
    parts = [head, "<p class='note'>Per modality the query of median X→all AP (typical) and of "
             "the lowest (hard); results over every modality's test items, the query itself "
             "left out; ✓ same class, ✗ another.</p>"]
    for ex in page.examples:
        parts.append(f"<div class='example' data-modality='{ex.query.modality}'>"
                     f"<div class='item query'><b>{escape(ex.kind)} {ex.query.modality} query"
                     f"</b> (AP {ex.ap:.3f})<br>{_item(ex.query, page.media)}</div>"
                     "<div class='hits'>")
        for hit in ex.hits:
            kind, mark = ("relevant", "✓") if hit.relevant else ("irrelevant", "✗")
            parts.append(f"<div class='item hit {kind}' data-modality='{hit.sample.modality}'>"
                         f"<span class='mark'>{mark}</span> #{hit.rank} "
                         f"<span class='score'>{hit.score:.3f}</span> "
                         f"{_item(hit.sample, page.media)}</div>")
        parts.append("</div></div>")
    return "".join(parts) + "</section>"


def _item(sample: Sample, media: dict[Sample, dict]) -> str:
    shown = media.get(sample, {})
    out = [f"<span class='cls'>{escape(sample.class_name.replace('_', ' '))}</span> "
           f"<span class='modality'>[{sample.modality}]</span>"]
    if shown.get("picture"):
        out.append(f"<img src='{escape(shown['picture'])}' alt='{sample.modality}'>")
    if shown.get("audio"):
        out.append(f"<audio controls preload='none' src='{escape(shown['audio'])}'></audio>")
    if shown.get("text"):
        out.append(f"<div class='snippet'>{escape(shown['text'])}</div>")
    if shown.get("problem"):
        out.append(f"<div class='note'>{escape(shown['problem'])}</div>")
    return "".join(out)
