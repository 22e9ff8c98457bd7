"""The three dataset readers: generic folders, PKU FG-XMedia list files, CUB-200-2011 files.

Each returns a :class:`~dcinet.data.records.Collection`. Problems a reader can see without decoding
media (malformed list line, missing file, label out of range, unexpected folder) follow the
collect-or-raise rule of :mod:`dcinet.data.problems`: with ``problems=[]`` the bad entry is left out
and recorded, without it the first one raises :class:`~dcinet.errors.DcinetError`.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from dcinet.config import Config
from dcinet.data.problems import Problem, report
from dcinet.data.records import MODALITIES, SPLITS, Collection, Sample
from dcinet.errors import DcinetError

FORMATS: tuple[str, ...] = ("folder", "fgxmedia", "cub")
FRAME_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")
"""Suffixes of video frame images (a clip is a folder of them, or one of them)."""
MAX_INFERRED_CLASSES = 100_000
"""Without an explicit class count, labels from this value up are reported out of range."""
_CLASS_PREFIX = re.compile(r"^\d+\.")
_LABEL = re.compile(r"[+-]?[0-9]{1,18}")
"""An integer label or id: ASCII digits only, small enough for int64 and ``int()``."""


@dataclass(frozen=True)
class ListEntry:
    """One line of an FG-XMedia list file: ``<relative path> <label>`` (``line_no`` is 1-based)."""

    rel_path: str
    label: int
    line_no: int


def strip_class_prefix(name: str) -> str:
    """``"001.Black_footed_Albatross"`` -> ``"Black_footed_Albatross"`` (other names unchanged)."""
    return _CLASS_PREFIX.sub("", name)


def _require_root(root: Path) -> None:
    if not os.path.isdir(root):
        raise DcinetError(f"dataset root not found or not a folder: {root}")


def _pick_modalities(found: list[str], wanted: list[str] | None, root: Path) -> list[str]:
    """The modalities to read, in canonical order; raises when none or a wanted one is absent."""
    if wanted is not None:
        unknown = [m for m in wanted if m not in MODALITIES]
        if unknown:
            raise DcinetError(f"unknown modality {unknown[0]!r}; known: {', '.join(MODALITIES)}")
        absent = [m for m in wanted if m not in found]
        if absent:
            raise DcinetError(f"modality {absent[0]!r} not found in {root} (found: {', '.join(found) or 'none'})")
        found = [m for m in MODALITIES if m in wanted]
    if not found:
        raise DcinetError(f"no modality found in {root} (expected some of {', '.join(MODALITIES)})")
    return found


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


# ----------------------------------------------------------------------------- folder layout
def read_folder(root: Path | str, modalities: list[str] | None = None,
                problems: list[Problem] | None = None) -> Collection:
    """Read ``ROOT/<modality>/<split>/<class>/<file>``.

    Classes are matched across modalities by folder name; label = position of the name in the
    sorted union of class names. Top-level files (``synth.json``) and hidden entries are ignored;
    an unknown top-level folder, a split other than train/test, a stray file outside a class folder
    or a sub-folder inside one (except for video, where a folder of frames is one sample) is a
    ``layout`` problem.
    """
    root = Path(root)
    _require_root(root)
    found = []
    for entry in sorted(p for p in root.iterdir() if _visible(p) and p.is_dir()):
        if entry.name in MODALITIES:
            found.append(entry.name)
        else:
            report(problems, Problem("layout", entry, "", f"unknown top-level folder {entry.name!r}; "
                                     f"expected modality folders ({', '.join(MODALITIES)})"))
    chosen = _pick_modalities([m for m in MODALITIES if m in found], modalities, root)
    items: list[tuple[str, str, str, Path]] = []
    for modality in chosen:
        items += _walk_modality(root / modality, modality, problems)
    classes = sorted({cls for _, _, cls, _ in items})
    index = {name: i for i, name in enumerate(classes)}
    samples = [Sample(m, split, index[cls], cls, path) for m, split, cls, path in items]
    return Collection(classes=classes, samples=samples, root=root, format="folder")


def _walk_modality(mod_dir: Path, modality: str,
                   problems: list[Problem] | None) -> list[tuple[str, str, str, Path]]:
    """``(modality, split, class, path)`` of every sample under one modality folder."""
    out = []
    order = {name: i for i, name in enumerate(SPLITS)}
    for split_dir in sorted(filter(_visible, mod_dir.iterdir()), key=lambda p: (order.get(p.name, len(order)), p.name)):
        if not (split_dir.is_dir() and split_dir.name in SPLITS):
            report(problems, Problem("layout", split_dir, "", f"expected a split folder ({', '.join(SPLITS)}) "
                                     f"under {mod_dir.name}/"))
            continue
        for class_dir in sorted(filter(_visible, split_dir.iterdir())):
            if not class_dir.is_dir():
                report(problems, Problem("layout", class_dir, "", "file outside a class folder"))
                continue
            for path in sorted(filter(_visible, class_dir.iterdir())):
                if path.is_dir() and modality != "video":
                    report(problems, Problem("layout", path, "", f"unexpected folder inside a {modality} class folder"))
                    continue
                out.append((modality, split_dir.name, class_dir.name, path))
    return out


# ----------------------------------------------------------------------------- FG-XMedia lists
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
        if len(parts) != 2 or not _LABEL.fullmatch(parts[1]):
            why = f"expected '<relative path> <integer label>', got {_shorten(line)}"
        else:
            why = _unsafe_path(parts[0])
        if why:
            report(problems, Problem("malformed_line", path, f"{path}:{line_no}", why))
            continue
        entries.append(ListEntry(parts[0], int(parts[1]), line_no))
    return entries


def _shorten(text: str, limit: int = 120) -> str:
    """``repr(text)``, cut to about ``limit`` characters for messages."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def _unsafe_path(rel_path: str) -> str:
    """Why a listed path cannot be used under the dataset root, or ``""`` when it can."""
    if "\x00" in rel_path:
        return f"path {_shorten(rel_path)} holds a NUL character"
    parts = rel_path.replace("\\", "/").split("/")
    if rel_path.startswith(("/", "\\")) or ".." in parts:
        return f"path {_shorten(rel_path)} must be relative to the dataset root, without '..'"
    return ""


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
    _require_root(root)
    lists = Path(lists_dir) if lists_dir is not None else root / "list"
    if not os.path.isdir(lists):
        raise DcinetError(f"FG-XMedia list folder not found: {lists}")
    found = [m for m in MODALITIES if any(os.path.isfile(lists / m / f"{s}.txt") for s in SPLITS)]
    chosen = _pick_modalities(found, modalities, lists)
    rows: list[FgxRow] = []
    for modality in chosen:
        for split in SPLITS:
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


# ----------------------------------------------------------------------------- CUB-200-2011
CUB_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt")


def _read_id_table(path: Path, problems: list[Problem] | None) -> dict[int, tuple[str, str]]:
    """``id -> (value, source)`` from ``<int id><sep><value>`` lines; sep = whitespace or a comma."""
    if not path.is_file():
        raise DcinetError(f"CUB file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DcinetError(f"CUB file {path} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    table: dict[int, tuple[str, str]] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        source = f"{path.name}:{line_no}"
        match = re.fullmatch(r"([+-]?[0-9]{1,18})\s*(?:,\s*|\s+)(\S.*)", line)
        if match is None:
            report(problems, Problem("malformed_line", path, source,
                                     f"expected '<integer id> <value>', got {_shorten(line)}"))
        elif int(match[1]) in table:
            report(problems, Problem("malformed_line", path, source,
                                     f"id {match[1]} already given at {table[int(match[1])][1]}"))
        else:
            table[int(match[1])] = (match[2].strip(), source)
    return table


def read_cub(root: Path | str, modalities: list[str] | None = None, problems: list[Problem] | None = None,
             train_flag: int = 1) -> Collection:
    """Read a CUB-200-2011 style tree (image-only).

    ``images.txt`` (id, path under ``ROOT/images/``), ``image_class_labels.txt`` (id, class id),
    ``train_test_split.txt`` (id, 0 or 1; ``train_flag`` marks train, 1 in the official release)
    and ``classes.txt`` (class id, name), with whitespace (official release, 1-based ids) or
    ``", "`` separators. Class ids are remapped to contiguous 0-based labels in ``classes.txt``
    order; names lose a leading ``NNN.``.
    """
    if train_flag not in (0, 1):
        raise DcinetError(f"CUB train flag must be 0 or 1, got {train_flag}")
    root = Path(root)
    _require_root(root)
    _pick_modalities(["image"], modalities, root)
    images, labels, splits, class_rows = (_read_id_table(root / name, problems) for name in CUB_FILES)
    label_of = {cid: i for i, cid in enumerate(class_rows)}
    classes = [strip_class_prefix(name) for name, _ in class_rows.values()]
    samples = []
    for image_id, (rel_path, source) in images.items():
        path = root / "images" / rel_path
        unsafe = _unsafe_path(rel_path)
        if unsafe:
            report(problems, Problem("malformed_line", root / "images.txt", source, unsafe))
            continue
        sample = _cub_sample(image_id, path, source, labels, splits, label_of, classes, problems, str(train_flag))
        if sample is not None:
            samples.append(sample)
    return Collection(classes=classes, samples=samples, root=root, format="cub")


def _cub_sample(image_id: int, path: Path, source: str, labels: dict, splits: dict, label_of: dict,
                classes: list[str], problems: list[Problem] | None, train_flag: str) -> Sample | None:
    """The sample of one ``images.txt`` row, or ``None`` after reporting why it is unusable."""
    if image_id not in labels or image_id not in splits:
        missing = "image_class_labels.txt" if image_id not in labels else "train_test_split.txt"
        report(problems, Problem("malformed_line", path, source, f"image id {image_id} has no line in {missing}"))
        return None
    class_id, label_source = labels[image_id]
    if not _LABEL.fullmatch(class_id) or int(class_id) not in label_of:
        report(problems, Problem("label_out_of_range", path, label_source,
                                 f"class id {_shorten(class_id)} is not in classes.txt"))
        return None
    flag, split_source = splits[image_id]
    if flag not in ("0", "1"):
        report(problems, Problem("malformed_line", path, split_source, f"split flag must be 0 or 1, got {_shorten(flag)}"))
        return None
    if not os.path.isfile(path):
        report(problems, Problem("missing_file", path, source, "listed image does not exist"))
        return None
    label = label_of[int(class_id)]
    return Sample("image", "train" if flag == train_flag else "test", label, classes[label], path, source=source)


# ----------------------------------------------------------------------------- entry point
def read_collection(root: Path | str, format: str = "folder", modalities: list[str] | None = None,
                    problems: list[Problem] | None = None, lists_dir: Path | str | None = None,
                    num_classes: int | None = None, train_flag: int | None = None) -> Collection:
    """Read a dataset in one of :data:`FORMATS`; see :func:`read_folder`, :func:`read_fgxmedia`,
    :func:`read_cub`. ``lists_dir`` and ``num_classes`` apply to ``fgxmedia`` only, ``train_flag``
    to ``cub`` only."""
    if format != "fgxmedia" and (lists_dir is not None or num_classes is not None):
        raise DcinetError(f"lists_dir / num_classes apply to the fgxmedia format only, not {format!r}")
    if format != "cub" and train_flag is not None:
        raise DcinetError(f"train_flag applies to the cub format only, not {format!r}")
    if format == "folder":
        return read_folder(root, modalities, problems)
    if format == "fgxmedia":
        return read_fgxmedia(root, modalities, lists_dir, num_classes, problems)
    if format == "cub":
        return read_cub(root, modalities, problems, 1 if train_flag is None else train_flag)
    raise DcinetError(f"unknown dataset format {format!r}; choose one of {', '.join(FORMATS)}")


def read_configured(root: Path | str, cfg: Config, problems: list[Problem] | None = None) -> Collection:
    """:func:`read_collection` with a run config's format, modalities and CUB train flag."""
    return read_collection(root, cfg.format, cfg.modalities, problems,
                           train_flag=cfg.cub_train_flag if cfg.format == "cub" else None)
