"""Reader of a CUB-200-2011 style tree (image-only): ``images.txt``, ``image_class_labels.txt``,
``train_test_split.txt`` and ``classes.txt``, checked without decoding the images."""

from __future__ import annotations

import os
import re
from pathlib import Path

from dcinet.data.problems import Problem, report
from dcinet.data.reader_common import (
    LABEL_PATTERN,
    pick_modalities,
    require_root,
    shorten,
    strip_class_prefix,
    unsafe_path,
)
from dcinet.data.records import Collection, Sample
from dcinet.errors import DcinetError

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
                                     f"expected '<integer id> <value>', got {shorten(line)}"))
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
    require_root(root)
    pick_modalities(["image"], modalities, root)
    images, labels, splits, class_rows = (_read_id_table(root / name, problems) for name in CUB_FILES)
    label_of = {cid: i for i, cid in enumerate(class_rows)}
    classes = [strip_class_prefix(name) for name, _ in class_rows.values()]
    samples = []
    for image_id, (rel_path, source) in images.items():
        path = root / "images" / rel_path
        unsafe = unsafe_path(rel_path)
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
    if not LABEL_PATTERN.fullmatch(class_id) or int(class_id) not in label_of:
        report(problems, Problem("label_out_of_range", path, label_source,
                                 f"class id {shorten(class_id)} is not in classes.txt"))
        return None
    flag, split_source = splits[image_id]
    if flag not in ("0", "1"):
        report(problems, Problem("malformed_line", path, split_source, f"split flag must be 0 or 1, got {shorten(flag)}"))
        return None
    if not os.path.isfile(path):
        report(problems, Problem("missing_file", path, source, "listed image does not exist"))
        return None
    label = label_of[int(class_id)]
    return Sample("image", "train" if flag == train_flag else "test", label, classes[label], path, source=source)
