"""Reader of PKU FG-XMedia list files: ``<lists_dir>/<modality>/{train,test}.txt`` lines of
``<relative path> <label>``, checked without decoding media (see :mod:`dcinet.data.problems` for the
collect-or-raise rule)."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from dcinet.data.problems import Problem, report
from dcinet.data.reader_common import (
    FRAME_SUFFIXES,
    LABEL_PATTERN,
    MAX_INFERRED_CLASSES,
    pick_modalities,
    require_root,
    shorten,
    strip_class_prefix,
    unsafe_path,
)
from dcinet.data.records import MODALITIES, Collection, Sample
from dcinet.errors import DcinetError

FGX_SPLITS: tuple[str, ...] = ("train", "test")
"""The splits PKU FG-XMedia lists (``<modality>/<split>.txt``); it has no val list."""


@dataclass(frozen=True)
class ListEntry:
    """One line of an FG-XMedia list file: ``<relative path> <label>`` (``line_no`` is 1-based)."""

    rel_path: str
    label: int
    line_no: int


def parse_list_file(path: Path | str, problems: list[Problem] | None = None) -> list[ListEntry]:
    """Parse ``<relative path> <label>`` lines (CRLF and blank lines tolerated; path may hold spaces).

    A line without a path and an integer label (ASCII digits, at most 18 of them), or whose path
    is absolute, climbs out with ``..`` or holds a NUL character, is a ``malformed_line`` problem
    naming ``path:line``.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DcinetError(f"list file not found: {path}") from None
    except OSError as exc:
        raise DcinetError(f"cannot read list file {path} ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise DcinetError(f"list file {path} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    entries = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or not LABEL_PATTERN.fullmatch(parts[1]):
            why = f"expected '<relative path> <integer label>', got {shorten(line)}"
        else:
            why = unsafe_path(parts[0])
        if why:
            report(problems, Problem("malformed_line", path, f"{path}:{line_no}", why))
            continue
        entries.append(ListEntry(parts[0], int(parts[1]), line_no))
    return entries


FgxRow = tuple[str, str, ListEntry, str]
"""One usable list line: ``(modality, split, entry, source)``, source = ``list/image/train.txt:12``."""


def read_fgxmedia_lists(root: Path | str, lists_dir: Path | str | None = None,
                        modalities: list[str] | None = None, num_classes: int | None = None,
                        problems: list[Problem] | None = None) -> tuple[list[FgxRow], list[str]]:
    """The usable lines of the FG-XMedia lists and the class names, without looking at media files.

    Reads ``<lists_dir>/<modality>/{train,test}.txt`` (default ``ROOT/list``); malformed lines,
    labels out of ``0..num_classes-1`` and label conflicts within a folder are problems (see
    :func:`read_fgxmedia`) and their lines are left out. ``num_classes`` defaults to the largest
    label below :data:`MAX_INFERRED_CLASSES` plus one.

    Returns:
        ``(rows, classes)``: rows in modality, split, line order; ``classes[label]`` = name.
    """
    root = Path(root)
    require_root(root)
    lists = Path(lists_dir) if lists_dir is not None else root / "list"
    if not os.path.isdir(lists):
        raise DcinetError(f"FG-XMedia list folder not found: {lists}")
    found = [m for m in MODALITIES
             if any(os.path.isfile(lists / m / f"{s}.txt") for s in FGX_SPLITS)]
    chosen = pick_modalities(found, modalities, lists)
    rows: list[FgxRow] = []
    for modality in chosen:
        for split in FGX_SPLITS:
            list_path = lists / modality / f"{split}.txt"
            if os.path.isfile(list_path):
                shown = _shown(list_path, root)
                rows += [(modality, split, e, f"{shown}:{e.line_no}")
                         for e in parse_list_file(list_path, problems)]
    if num_classes is None:
        num_classes = max((e.label for _, _, e, _ in rows if e.label < MAX_INFERRED_CLASSES), default=-1) + 1
    rows = [r for r in rows if _label_ok(r, root, num_classes, problems)]
    rows = _drop_label_conflicts(rows, root, problems)
    return rows, _fgx_class_names(rows, num_classes)


def read_fgxmedia(root: Path | str, modalities: list[str] | None = None, lists_dir: Path | str | None = None,
                  num_classes: int | None = None, problems: list[Problem] | None = None) -> Collection:
    """Read PKU FG-XMedia lists ``<lists_dir>/<modality>/{train,test}.txt`` (default ``ROOT/list``).

    Paths are relative to ``root``; labels are 0-based and must lie in ``0..num_classes-1``
    (default: the largest label below :data:`MAX_INFERRED_CLASSES` + 1). A class's name is its folder name with a leading ``NNN.``
    stripped, taken from the first modality (canonical order) that lists it; the real lists spell a
    few names differently per modality (``Gray_Catbird`` / ``Grey_Catbird``), labels decide. Within a
    modality, entries of one folder carrying different labels are ``label_out_of_range`` problems
    (the minority label is reported). Missing files are ``missing_file`` problems. A video line
    names a clip folder of frames or one frame image.
    """
    root = Path(root)
    rows, names = read_fgxmedia_lists(root, lists_dir, modalities, num_classes, problems)
    samples = []
    for modality, split, entry, source in rows:
        path = root / entry.rel_path
        if not os.path.exists(path):  # False, not OSError, for names too long
            report(problems, Problem("missing_file", path, source, "listed file does not exist"))
            continue
        samples.append(Sample(modality, split, entry.label, names[entry.label], path, source=source))
    return Collection(classes=names, samples=samples, root=root, format="fgxmedia")


def _shown(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it lies under it, else as given (for ``source``)."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _label_ok(row: FgxRow, root: Path, num_classes: int,
              problems: list[Problem] | None) -> bool:
    entry, source = row[2], row[3]
    if 0 <= entry.label < num_classes:
        return True
    report(problems, Problem("label_out_of_range", root / entry.rel_path, source,
                             f"label {entry.label} is outside 0..{num_classes - 1}"))
    return False


def _class_folder(modality: str, rel_path: str) -> str:
    """The class folder's name of a listed path: its parent's, or for a video frame (an image
    inside a clip folder) its grandparent's."""
    parts = rel_path.replace("\\", "/").split("/")
    depth = 3 if modality == "video" and Path(rel_path).suffix.lower() in FRAME_SUFFIXES else 2
    return parts[-depth] if len(parts) >= depth else ""


def _drop_label_conflicts(rows: list[FgxRow], root: Path, problems: list[Problem] | None) -> list[FgxRow]:
    """Report and drop entries whose label differs from the majority label of their folder."""
    votes: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for modality, _, entry, _ in rows:
        votes[modality, _class_folder(modality, entry.rel_path)][entry.label] += 1
    kept = []
    for row in rows:
        modality, _, entry, source = row
        counter = votes[modality, _class_folder(modality, entry.rel_path)]
        majority = min(counter, key=lambda lab: (-counter[lab], lab))
        if entry.label == majority:
            kept.append(row)
            continue
        report(problems, Problem("label_out_of_range", root / entry.rel_path, source,
                                 f"label {entry.label} differs from label {majority} of the other "
                                 f"{counter[majority]} {modality} entries in the same folder"))
    return kept


def _fgx_class_names(rows: list[FgxRow], num_classes: int) -> list[str]:
    """Name of each label: most frequent folder name in the first modality listing it."""
    votes: dict[int, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for modality, _, entry, _ in rows:
        votes[entry.label][modality][strip_class_prefix(_class_folder(modality, entry.rel_path))] += 1
    names = []
    for label in range(num_classes):
        by_modality = votes.get(label)
        if not by_modality:
            names.append(f"class_{label}")
            continue
        counter = by_modality[next(m for m in MODALITIES if m in by_modality)]
        names.append(min(counter, key=lambda n: (-counter[n], n)))
    return names
