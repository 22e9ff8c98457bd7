"""The dataset readers' entry point, and the generic folder layout.

:func:`read_collection` reads any of :data:`~dcinet.config.FORMATS`: generic folders (here), PKU FG-XMedia list
files (:mod:`dcinet.data.fgxmedia`), CUB-200-2011 files (:mod:`dcinet.data.cub`). Each returns a
:class:`~dcinet.data.records.Collection`. Problems a reader can see without decoding media
(malformed list line, missing file, label out of range, unexpected folder) follow the
collect-or-raise rule of :mod:`dcinet.data.problems`: with ``problems=[]`` the bad entry is left out
and recorded, without it the first one raises :class:`~dcinet.errors.DcinetError`.
"""

from __future__ import annotations

from pathlib import Path

from dcinet.config import FORMATS, Config
from dcinet.data.cub import read_cub
from dcinet.data.fgxmedia import read_fgxmedia
from dcinet.data.problems import Problem, report
from dcinet.data.reader_common import pick_modalities, require_root
from dcinet.data.records import MODALITIES, SPLITS, Collection, Sample
from dcinet.errors import DcinetError


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def read_folder(root: Path | str, modalities: list[str] | None = None,
                problems: list[Problem] | None = None) -> Collection:
    """Read ``ROOT/<modality>/<split>/<class>/<file>``.

    Classes are matched across modalities by folder name; label = position of the name in the
    sorted union of class names. Top-level files (``synth.json``) and hidden entries are ignored;
    an unknown top-level folder, a split other than train/val/test, a stray file outside a class
    folder or a sub-folder inside one (except for video, where a folder of frames is one sample) is
    a ``layout`` problem.
    """
    root = Path(root)
    require_root(root)
    found = []
    for entry in sorted(p for p in root.iterdir() if _visible(p) and p.is_dir()):
        if entry.name in MODALITIES:
            found.append(entry.name)
        else:
            report(problems, Problem("layout", entry, "", f"unknown top-level folder {entry.name!r}; "
                                     f"expected modality folders ({', '.join(MODALITIES)})"))
    chosen = pick_modalities([m for m in MODALITIES if m in found], modalities, root)
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


def read_collection(root: Path | str, format: str = "folder", modalities: list[str] | None = None,
                    problems: list[Problem] | None = None, lists_dir: Path | str | None = None,
                    num_classes: int | None = None, train_flag: int | None = None) -> Collection:
    """Read a dataset in one of :data:`~dcinet.config.FORMATS`; see :func:`read_folder`,
    :func:`~dcinet.data.fgxmedia.read_fgxmedia`, :func:`~dcinet.data.cub.read_cub`. ``lists_dir``
    and ``num_classes`` apply to ``fgxmedia`` only, ``train_flag`` to ``cub`` only."""
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
    """:func:`read_collection` with a run config's format, modalities, FG-XMedia list folder and
    class count, and CUB train flag."""
    return read_collection(root, cfg.format, cfg.modalities, problems, cfg.lists_dir,
                           cfg.num_classes,
                           train_flag=cfg.cub_train_flag if cfg.format == "cub" else None)
