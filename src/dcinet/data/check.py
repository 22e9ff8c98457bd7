"""Dataset checking: counts, and every problem that would break or silently bias training.

:func:`check_root` reads a dataset collecting reader problems (malformed list lines, missing files,
labels out of range, unexpected folders), then :func:`check_collection` adds what needs the whole
collection or the file contents: files that do not decode (PIL full load for images and
spectrogram pictures, a full soundfile read for audio, strict UTF-8 for text, every frame of a
video clip), paths listed twice,
byte-identical files within a modality, and classes present in one modality only.
``dcinet data check`` prints :meth:`CheckReport.format_report`; the training loader refuses data
with problems using the same wording (:func:`~dcinet.data.problems.format_problems`).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from dcinet.config import Config
from dcinet.data.audio import is_picture, read_audio
from dcinet.data.image import open_image
from dcinet.data.problems import DecodeError, Problem, format_problems
from dcinet.data.readers import read_collection
from dcinet.data.records import MODALITIES, SPLITS, Collection, Sample
from dcinet.data.text import decode_text
from dcinet.data.video import list_frames
from dcinet.distributed import DistInfo, all_gather

_DECODE_THREADS = 4


@dataclass
class CheckReport:
    """What :func:`check_collection` found.

    Attributes:
        problems: every problem, readers' first, in dataset order.
        counts: ``(modality, split) -> Counter(class name -> samples)``.
        classes: the collection's class names.
        bad_samples: positions in ``collection.samples`` that a problem disqualifies (a file that
            does not decode, the later copy of a duplicate, a one-modality class's samples).
        title: a first line naming the dataset.
    """

    problems: list[Problem]
    counts: dict[tuple[str, str], Counter]
    classes: list[str]
    bad_samples: set[int] = field(default_factory=set)
    title: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def format_report(self) -> str:
        """Counts per modality / split (with per-class min and max) followed by every problem."""
        lines = [self.title] if self.title else []
        lines.append(f"{len(self.classes)} classes")
        lines.append(f"{'modality':<9}{'split':<7}{'samples':>8}{'classes':>9}  per-class min / max")
        for (modality, split), counter in sorted(self.counts.items(), key=_count_order):
            per_class = [(counter.get(name, 0), name) for name in self.classes]
            (lo, lo_name), (hi, hi_name) = min(per_class, key=_first), max(per_class, key=_first)
            present = sum(1 for n, _ in per_class if n)
            lines.append(f"{modality:<9}{split:<7}{sum(counter.values()):>8}{present:>9}  "
                         f"{lo} ({lo_name}) / {hi} ({hi_name})")
        lines.append(format_problems(self.problems) if self.problems else "no problems found")
        return "\n".join(lines)


def _count_order(item: tuple[tuple[str, str], Counter]) -> tuple[int, int]:
    modality, split = item[0]
    return MODALITIES.index(modality), SPLITS.index(split)


def _first(item: tuple[int, str]) -> int:
    return item[0]


def check_collection(collection: Collection, cfg: Config | None = None, decode: bool = True,
                     progress: bool = False, dist: DistInfo | None = None) -> CheckReport:
    """Check a collection (only the modalities in ``cfg.modalities`` when given).

    ``decode=False`` skips reading file contents (decoding and byte-identical duplicates).
    ``progress`` shows a progress bar on stderr while decoding. ``dist``: the ``torchrun``
    process group whose ranks share the decoding (each decodes every ``world_size``-th file and
    all receive every result), so that the data is checked once between them, not once per rank.
    """
    wanted = set(cfg.modalities) if cfg is not None and cfg.modalities else set(MODALITIES)
    chosen = [i for i, s in enumerate(collection.samples) if s.modality in wanted]
    samples = collection.samples
    problems: list[Problem] = []
    bad: set[int] = set()
    _duplicate_entries(samples, chosen, problems, bad)
    if decode:
        unique = [i for i in chosen if i not in bad]
        digests = _decode_all([samples[i] for i in unique], problems, bad, unique, progress,
                              dist or DistInfo())
        _duplicate_files(samples, unique, digests, problems, bad)
    _single_modality_classes(collection, chosen, problems, bad)
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for i in chosen:
        counts[samples[i].modality, samples[i].split][samples[i].class_name] += 1
    return CheckReport(problems, dict(counts), list(collection.classes), bad)


def check_items(samples: list[Sample], progress: bool = False,
                dist: DistInfo | None = None) -> list[Problem]:
    """The problems of items to embed (a gallery, not training data): entries listed twice and
    files that do not decode. Byte-identical copies and classes of one modality are fine in a
    gallery (they break no search), and unlabelled items are fine too.

    Returns:
        Every problem, in the items' order (empty when all of them decode).
    """
    problems: list[Problem] = []
    bad: set[int] = set()
    positions = list(range(len(samples)))
    _duplicate_entries(samples, positions, problems, bad)
    unique = [i for i in positions if i not in bad]
    _decode_all([samples[i] for i in unique], problems, bad, unique, progress, dist or DistInfo())
    return problems


def _duplicate_entries(samples: list[Sample], chosen: list[int], problems: list[Problem],
                       bad: set[int]) -> None:
    """Report every repeat of an already listed ``(modality, path)``."""
    first_at: dict[tuple[str, Path], int] = {}
    for i in chosen:
        sample = samples[i]
        if sample.path is None:
            continue
        key = (sample.modality, sample.path)
        if key in first_at:
            earlier = samples[first_at[key]]
            problems.append(Problem("duplicate_entry", sample.path, sample.source,
                                    f"already listed ({earlier.split}{', ' + earlier.source if earlier.source else ''})"))
            bad.add(i)
        else:
            first_at[key] = i


def _decode_all(samples: list[Sample], problems: list[Problem], bad: set[int], positions: list[int],
                progress: bool, dist: DistInfo) -> list[str | None]:
    """Decode every sample (threads; this rank's share); report failures; returns each file's
    sha256 (None if none)."""
    mine = samples[dist.rank::dist.world_size]
    with ThreadPoolExecutor(max_workers=_DECODE_THREADS) as pool:
        done = tqdm(pool.map(_decode_one, mine), total=len(mine), desc="checking", unit="file",
                    disable=not (progress and dist.is_main))
        found = [(digest, None if e is None else (e.name, e.kind, e.reason)) for digest, e in done]
    shares = all_gather(found, dist)  # plain tuples: they cross process boundaries
    results = [shares[i % dist.world_size][i // dist.world_size] for i in range(len(samples))]
    digests = []
    for position, sample, (digest, error) in zip(positions, samples, results, strict=True):
        if error is not None:
            error = DecodeError(*error)
            problems.append(Problem(error.kind, _at_fault(sample, error), sample.source, error.reason))
            bad.add(position)
        digests.append(digest)
    return digests


def _at_fault(sample: Sample, error: DecodeError) -> Path | None:
    """The file to name: the sample's path, or the frame / entry inside a video clip folder."""
    if sample.modality == "video" and sample.path is not None and error.name != str(sample.path):
        return Path(error.name)
    return sample.path


def _decode_one(sample: Sample) -> tuple[str | None, DecodeError | None]:
    """``(sha256 of the file, None)`` when the sample decodes, else ``(None, the error)``."""
    try:
        if sample.path is None:
            decode_text((sample.text or "").encode("utf-8"), "<inline text>")
            return None, None
        if sample.modality == "video":
            _check_video(sample.path)
            return None, None
        try:
            data = sample.path.read_bytes()
        except FileNotFoundError:
            return None, DecodeError(str(sample.path), "missing_file", "file does not exist")
        except OSError as exc:
            return None, DecodeError(str(sample.path), f"bad_{sample.modality}",
                                     f"cannot read file ({exc.strerror or exc})")
        name = str(sample.path)
        if sample.modality == "image" or (sample.modality == "audio" and is_picture(sample.path)):
            open_image(data, name)
        elif sample.modality == "audio":
            read_audio(data, name)
        else:
            decode_text(data, name)
        return hashlib.sha256(data).hexdigest(), None
    except DecodeError as exc:
        return None, exc


def _check_video(path: Path) -> None:
    """A video sample is a frame image, or a folder of frame images only, each of which decodes.

    A frame that does not decode is reported with the frame's path and kind ``bad_video``.
    """
    for frame in list_frames(path, strict=True):
        try:
            open_image(frame)
        except DecodeError as exc:
            raise DecodeError(exc.name, "bad_video", f"unreadable frame: {exc.reason}") from None


def _duplicate_files(samples: list[Sample], positions: list[int], digests: list[str | None],
                     problems: list[Problem], bad: set[int]) -> None:
    """Report files whose bytes equal an earlier file of the same modality."""
    seen: dict[tuple[str, str], int] = {}
    for position, digest in zip(positions, digests, strict=True):
        if digest is None:
            continue
        sample = samples[position]
        key = (sample.modality, digest)
        if key in seen:
            problems.append(Problem("duplicate_file", sample.path, sample.source,
                                    f"same bytes as {samples[seen[key]].path}"))
            bad.add(position)
        else:
            seen[key] = position


def _single_modality_classes(collection: Collection, chosen: list[int], problems: list[Problem],
                             bad: set[int]) -> None:
    """With two or more modalities, report each class whose samples all come from one modality."""
    by_class: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i in chosen:
        sample = collection.samples[i]
        by_class[sample.label][sample.modality].append(i)
    present = {m for per in by_class.values() for m in per}
    if len(present) < 2:
        return
    for label in sorted(by_class):
        per_modality = by_class[label]
        if len(per_modality) != 1:
            continue
        (modality, members), = per_modality.items()
        first = collection.samples[members[0]]
        others = ", ".join(m for m in MODALITIES if m in present and m != modality)
        folder = first.path.parent if first.path is not None else None
        problems.append(Problem("single_modality_class", folder, first.source,
                                f"class {collection.classes[label]!r} has {len(members)} {modality} "
                                f"sample(s) and none in {others}"))
        bad.update(members)


def check_root(root: Path | str, format: str = "folder", cfg: Config | None = None, decode: bool = True,
               progress: bool = False, **read_options: object) -> CheckReport:
    """Read a dataset collecting reader problems, then :func:`check_collection` it.

    ``read_options`` go to :func:`~dcinet.data.readers.read_collection` (``lists_dir``,
    ``num_classes``, ``train_flag``).

    Raises:
        DcinetError: only for problems that stop reading altogether (no root, no list folder,
        unknown format, no modality).
    """
    reader_problems: list[Problem] = []
    modalities = cfg.modalities if cfg is not None else None
    collection = read_collection(root, format, modalities, reader_problems, **read_options)
    report = check_collection(collection, cfg, decode, progress)
    report.problems[:0] = reader_problems
    report.title = f"dataset {root} (format {format})"
    return report
