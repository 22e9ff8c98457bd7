"""``dcinet data prepare-fgxmedia``: compare a downloaded PKU FG-XMedia copy with its list files.

Every line of ``<lists>/<modality>/{train,test}.txt`` names a file (a clip folder or a frame for
video) under ``ROOT``. :func:`prepare_fgxmedia` reports, per modality and class, the listed files
that are missing and the files present but not listed ("extra": files under the folder that holds
all of a modality's listed files, e.g. ``ROOT/image``), without decoding anything (``dcinet data
check`` does that). The lists name audio as spectrogram pictures (``audio/audioimg/<class>/x.png``);
when only raw recordings are present (same stem, ``.wav/.flac/.ogg/.mp3`` anywhere under
``ROOT/audio``), ``convert_audio`` renders each to the listed picture with the data layer's own
STFT (:mod:`dcinet.data.audio`), so that training reads them as images.
"""

from __future__ import annotations

import io
import os
import posixpath
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from dcinet.config import Config
from dcinet.data.audio import PICTURE_SUFFIXES, read_audio, spectrogram_db, spectrogram_grey
from dcinet.data.fgxmedia import FGX_SPLITS, read_fgxmedia_lists
from dcinet.data.problems import DecodeError, Problem, format_problems
from dcinet.data.reader_common import strip_class_prefix
from dcinet.data.records import MODALITIES
from dcinet.errors import DcinetError
from dcinet.files import atomic_write_bytes

RAW_AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3")
_CONVERT_THREADS = 4


@dataclass(frozen=True)
class Listed:
    """One list line: its modality, split, path (relative to ROOT, ``/``-separated), class name and
    where it is listed (``list/image/train.txt:12``)."""

    modality: str
    split: str
    rel_path: str
    class_name: str
    source: str


@dataclass
class ModalityStatus:
    """How one modality's listed files compare with the files present.

    Attributes:
        listed: list lines per split; missing: listed files not present;
        extra: ``(relative path, class name)`` of files present but not listed.
    """

    modality: str
    listed: Counter = field(default_factory=Counter)
    missing: list[Listed] = field(default_factory=list)
    extra: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class PrepareReport:
    """What :func:`prepare_fgxmedia` found and did.

    Attributes:
        statuses: one per listed modality, canonical order.
        problems: list-file problems (malformed lines, labels out of range or in conflict).
        converted: ``(raw audio, written picture)`` relative paths.
        unconverted: listed pictures that ``convert_audio`` could not produce, with the reason.
        convertible: missing pictures that have one raw source (counted when not converting).
        size: side in pixels of the pictures written.
    """

    root: Path
    lists_dir: Path
    statuses: list[ModalityStatus]
    problems: list[Problem]
    converted: list[tuple[str, str]] = field(default_factory=list)
    unconverted: list[tuple[Listed, str]] = field(default_factory=list)
    convertible: int = 0
    size: int = 448

    @property
    def missing(self) -> int:
        """Listed files still missing (after any conversion)."""
        return sum(len(s.missing) for s in self.statuses)

    @property
    def ok(self) -> bool:
        """Complete: every listed file present and no list problem (extra files are allowed)."""
        return self.missing == 0 and not self.problems

    def format_report(self, show: int = 20) -> str:
        """Counts per modality / split, then missing and extra files by class (at most ``show``
        paths per modality and kind, ``0`` = all), conversions, list problems and a verdict."""
        lines = [f"PKU FG-XMedia at {self.root} (lists: {self.lists_dir})",
                 f"{'modality':<9}{'split':<7}{'listed':>8}{'present':>9}{'missing':>9}"]
        for status in self.statuses:
            missing = Counter(m.split for m in status.missing)
            for split in FGX_SPLITS:
                n = status.listed[split]
                lines.append(f"{status.modality:<9}{split:<7}{n:>8}{n - missing[split]:>9}{missing[split]:>9}")
        lines.append("extra files (present, not listed): "
                     + ", ".join(f"{s.modality} {len(s.extra)}" for s in self.statuses))
        for status in self.statuses:
            lines += _by_class(f"missing {status.modality} files",
                               ((m.class_name, f"{m.rel_path} ({m.source})") for m in status.missing), show)
            lines += _by_class(f"extra {status.modality} files", ((c, p) for p, c in status.extra), show)
        lines += self._conversion_lines()
        if self.problems:
            lines.append(format_problems(self.problems))
        total = sum(sum(s.listed.values()) for s in self.statuses)
        if self.ok:
            lines.append(f"complete: all {total} listed files are present (decode them with "
                         f"`dcinet data check {self.root} --format fgxmedia --lists {self.lists_dir}`)")
        else:
            lines.append(f"incomplete: {self.missing} of {total} listed files missing, "
                         f"{len(self.problems)} list problem(s)")
        return "\n".join(lines)

    def _conversion_lines(self) -> list[str]:
        lines = []
        if self.converted:
            lines.append(f"converted {len(self.converted)} raw audio file(s) to {self.size}x{self.size} "
                         "spectrogram pictures")
            lines += [f"  {raw} -> {picture}" for raw, picture in self.converted]
        if self.unconverted:
            lines.append(f"could not convert {len(self.unconverted)}:")
            lines += [f"  {item.rel_path} ({item.source}): {why}" for item, why in self.unconverted]
        if self.convertible:
            lines.append(f"{self.convertible} missing spectrogram picture(s) have a raw audio file under "
                         f"{self.root / 'audio'}: rerun with --convert-audio to render them")
        return lines


def _by_class(title: str, items: Iterable[tuple[str, str]], show: int) -> list[str]:
    """``title (n), by class:`` then per class its count and paths (``show`` paths in all)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for class_name, text in items:
        groups[class_name].append(text)
    if not groups:
        return []
    total = sum(len(v) for v in groups.values())
    lines, shown = [f"{title} ({total}), by class:"], 0
    for class_name in sorted(groups):
        lines.append(f"  {class_name}: {len(groups[class_name])}")
        for text in groups[class_name]:
            if show and shown >= show:
                break
            lines.append(f"    {text}")
            shown += 1
    if show and total > show:
        lines.append(f"  ... {total - show} more path(s) not shown (--show 0 lists all)")
    return lines


def _walk_files(root: Path, folder: str, recursive: bool) -> tuple[set[str], set[str]]:
    """Visible files and folders under ``root/folder``, as ``/``-separated paths relative to root."""
    files: set[str] = set()
    folders: set[str] = set()
    base = root / folder if folder else root
    for current, dirs, names in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith(".")] if recursive else []
        rel = Path(current).relative_to(root).as_posix()
        prefix = "" if rel == "." else f"{rel}/"
        files.update(prefix + n for n in names if not n.startswith("."))
        folders.update(prefix + d for d in dirs)
    return files, folders


def _compare(root: Path, modality: str, items: list[Listed]) -> tuple[ModalityStatus, list[tuple[str, str]]]:
    """The modality's status (no extras yet) and ``(path, class)`` of every file present but not listed.

    Files are looked for under the deepest folder holding every listed file (``image/``); when
    the listed files share none, only in their own folders. Files inside a listed video clip
    folder belong to that clip.
    """
    status = ModalityStatus(modality, Counter(item.split for item in items))
    folder_class = {posixpath.dirname(item.rel_path): item.class_name for item in items}
    scan = posixpath.commonpath(sorted(folder_class))
    files: set[str] = set()
    folders: set[str] = set()
    for folder, recursive in ([(scan, True)] if scan else [(p, p != "") for p in sorted(folder_class)]):
        found_files, found_folders = _walk_files(root, folder, recursive)
        files |= found_files
        folders |= found_folders
    clips = set()
    for item in items:
        if item.rel_path in files:
            continue
        if modality == "video" and item.rel_path in folders:
            clips.add(item.rel_path)
        else:
            status.missing.append(item)
    listed = {item.rel_path for item in items}
    unlisted = sorted(f for f in files - listed if not _in_clip(f, clips))
    return status, [(rel, _extra_class(rel, folder_class, scan)) for rel in unlisted]


def _in_clip(path: str, clips: set[str]) -> bool:
    """Whether ``path`` lies inside one of the listed clip folders ``clips``."""
    parts = path.split("/")
    return any("/".join(parts[:i]) in clips for i in range(1, len(parts)))


def _extra_class(rel_path: str, folder_class: dict[str, str], scan: str) -> str:
    """Class of an unlisted file: that of listed files in its folder, else its class folder's name."""
    parent = posixpath.dirname(rel_path)
    if parent in folder_class:
        return folder_class[parent]
    below = rel_path[len(scan) + 1:].split("/") if scan else rel_path.split("/")
    return strip_class_prefix(below[0]) if len(below) > 1 else "(no class folder)"


def _raw_audio(root: Path) -> dict[str, list[str]]:
    """Stem (lowercase) -> raw audio files under ``ROOT/audio`` (relative, ``/``-separated)."""
    files, _ = _walk_files(root, "audio", True) if (root / "audio").is_dir() else (set(), set())
    by_stem: dict[str, list[str]] = defaultdict(list)
    for rel in sorted(files):
        stem, suffix = posixpath.splitext(posixpath.basename(rel))
        if suffix.lower() in RAW_AUDIO_SUFFIXES:
            by_stem[stem.lower()].append(rel)
    return by_stem


def _source_of(item: Listed, by_stem: dict[str, list[str]]) -> tuple[str | None, str]:
    """The raw recording to render as ``item``'s picture, or ``(None, why not)``.

    A recording in a folder named like the listed class folder wins; otherwise the stem must be
    unique under ``ROOT/audio`` (stems repeat across classes in the real lists).
    """
    stem = posixpath.splitext(posixpath.basename(item.rel_path))[0]
    candidates = by_stem.get(stem.lower(), [])
    want = strip_class_prefix(posixpath.basename(posixpath.dirname(item.rel_path))).casefold()
    same_class = [c for c in candidates
                  if strip_class_prefix(posixpath.basename(posixpath.dirname(c))).casefold() == want]
    if len(same_class) == 1:
        return same_class[0], ""
    if not same_class and len(candidates) == 1:
        return candidates[0], ""
    suffixes = "/".join(RAW_AUDIO_SUFFIXES)
    if not candidates:
        return None, f"no raw audio file {stem}{{{suffixes}}} under audio/"
    return None, (f"{len(candidates)} raw audio files named {stem}.* ({', '.join(candidates[:3])}"
                  f"{', ...' if len(candidates) > 3 else ''}) and not exactly one in a folder named {want!r}")


def render_spectrogram_picture(raw: Path | str, out: Path | str, size: int = 448,
                               cfg: Config | None = None) -> None:
    """Write the grey spectrogram picture of a recording (``size x size``, format from ``out``'s suffix).

    Uses :func:`~dcinet.data.audio.spectrogram_db` with ``cfg``'s ``sample_rate``, ``n_fft``,
    ``hop_length`` (default: the paper preset's) and :func:`~dcinet.data.audio.spectrogram_grey`,
    so that loading the picture gives (up to 8-bit rounding) the tensor that
    :func:`~dcinet.data.audio.load_audio` computes from the recording at ``img_size = size``.
    Written to a temporary file and renamed.

    Raises:
        DecodeError: the recording does not decode; DcinetError: the picture cannot be written.
    """
    cfg = cfg or Config()
    out = Path(out)
    wave, rate = read_audio(raw)
    grey = spectrogram_grey(spectrogram_db(wave, rate, cfg.sample_rate, cfg.n_fft, cfg.hop_length), size)
    picture = Image.fromarray((grey.numpy() * 255.0).round().astype(np.uint8), mode="L")
    encoded = io.BytesIO()
    try:
        picture.save(encoded, format=Image.registered_extensions()[out.suffix.lower()])
        atomic_write_bytes(out, encoded.getvalue(), durable=False)
    except (OSError, KeyError) as exc:
        raise DcinetError(f"cannot write spectrogram picture {out} ({exc})") from None


def _convert(root: Path, sources: dict[Listed, tuple[str | None, str]], report: PrepareReport,
             cfg: Config | None, progress: bool) -> None:
    """Render each listed picture from its raw source; record results in ``report``."""
    jobs = [(item, raw) for item, (raw, _) in sources.items() if raw is not None]
    report.unconverted += [(item, why) for item, (raw, why) in sources.items() if raw is None]

    def run(job: tuple[Listed, str]) -> str:
        try:
            render_spectrogram_picture(root / job[1], root / job[0].rel_path, report.size, cfg)
        except DecodeError as exc:
            return exc.reason
        except DcinetError as exc:
            return str(exc)
        return ""

    with ThreadPoolExecutor(max_workers=_CONVERT_THREADS) as pool:
        errors = list(tqdm(pool.map(run, jobs), total=len(jobs), desc="converting", unit="file",
                           disable=not progress))
    for (item, raw), error in zip(jobs, errors, strict=True):
        if error:
            report.unconverted.append((item, f"{raw}: {error}"))
        else:
            report.converted.append((raw, item.rel_path))


def prepare_fgxmedia(root: Path | str, lists_dir: Path | str | None = None, convert_audio: bool = False,
                     size: int = 448, cfg: Config | None = None, progress: bool = False) -> PrepareReport:
    """Compare ``root`` with the FG-XMedia lists (default ``ROOT/list``), optionally rendering
    missing listed spectrogram pictures from raw audio (``size x size`` pictures, STFT settings of
    ``cfg``, default the paper preset's). Raw recordings matched to a listed picture are not
    reported as extra files.

    Raises:
        DcinetError: only when the root or the list folder is absent or holds no list file.
    """
    root = Path(root)
    lists = Path(lists_dir) if lists_dir is not None else root / "list"
    problems: list[Problem] = []
    rows, classes = read_fgxmedia_lists(root, lists, problems=problems)
    by_modality: dict[str, list[Listed]] = defaultdict(list)
    for modality, split, entry, source in rows:
        rel = posixpath.normpath(entry.rel_path.replace("\\", "/"))
        by_modality[modality].append(Listed(modality, split, rel, classes[entry.label], source))
    report = PrepareReport(root, lists, [], problems, size=size)
    for modality in (m for m in MODALITIES if m in by_modality):
        status, extra = _compare(root, modality, by_modality[modality])
        if modality == "audio" and status.missing:
            by_stem = _raw_audio(root)
            sources = {m: _source_of(m, by_stem) for m in status.missing
                       if posixpath.splitext(m.rel_path)[1].lower() in PICTURE_SUFFIXES}
            used = {raw for raw, _ in sources.values() if raw is not None}
            extra = [(rel, cls) for rel, cls in extra if rel not in used]
            if convert_audio:
                _convert(root, sources, report, cfg, progress)
                converted = {picture for _, picture in report.converted}
                status.missing = [m for m in status.missing if m.rel_path not in converted]
            else:
                report.convertible = sum(1 for raw, _ in sources.values() if raw is not None)
        status.extra = extra
        report.statuses.append(status)
    return report
