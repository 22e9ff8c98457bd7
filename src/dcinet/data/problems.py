"""One found problem in a dataset, and the collect-or-raise rule the readers follow.

Readers and the checker describe every bad input as a :class:`Problem`. A reader called with a
``problems`` list appends to it and carries on (``dcinet data check`` wants *every* problem); a
reader called without one raises :class:`~dcinet.errors.DcinetError` on the first problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dcinet.errors import DcinetError

KINDS: dict[str, str] = {
    "malformed_line": "malformed line",
    "missing_file": "missing file",
    "label_out_of_range": "label out of range",
    "layout": "unexpected layout",
    "bad_image": "unreadable image",
    "bad_audio": "undecodable audio",
    "bad_text": "bad text",
    "bad_video": "bad video",
    "duplicate_entry": "duplicate entry",
    "duplicate_file": "duplicate file",
    "single_modality_class": "class in one modality only",
}
"""Problem kinds and the words used for them in reports."""


@dataclass(frozen=True)
class Problem:
    """One bad input.

    Attributes:
        kind: a key of :data:`KINDS`.
        path: the file or folder at fault (``None`` only when there is none to name).
        source: where it was listed (``list/image/train.txt:12``); empty for folder layouts.
        message: what is wrong, in a few words.
    """

    kind: str
    path: Path | None
    source: str
    message: str

    def format(self) -> str:
        """One line: ``<kind words>: <path> (<source>): <message>``."""
        where = str(self.path) if self.path is not None else "<dataset>"
        if self.source:
            where += f" ({self.source})"
        return f"{KINDS.get(self.kind, self.kind)}: {where}: {self.message}"


_OBJECT_REPR = re.compile(r"\s*<[^<>]*? at 0x[0-9a-fA-F]+>")
_EMPTY_BRACKETS = re.compile(r"\s*\(\s*\)")


def plain_text(text: str) -> str:
    """``text`` without the reprs of Python objects (``<_io.BytesIO object at 0x7f...>``) that
    decoders put in their messages: they mean nothing to a user. Brackets left empty go too."""
    return _EMPTY_BRACKETS.sub("", _OBJECT_REPR.sub("", text)).strip()


class DecodeError(DcinetError):
    """A media file that cannot be used; raised by the per-modality decoders.

    Attributes:
        name: the file (or ``<bytes>``); kind: a key of :data:`KINDS`; reason: what is wrong,
        without the file name (the checker puts that in :attr:`Problem.path`) and without object
        reprs (:func:`plain_text`).
    """

    def __init__(self, name: str, kind: str, reason: str) -> None:
        reason = plain_text(reason)
        super().__init__(f"{name}: {reason}")
        self.name, self.kind, self.reason = name, kind, reason


def report(problems: list[Problem] | None, problem: Problem) -> None:
    """Append ``problem`` to ``problems``, or raise it as a :class:`DcinetError` when ``None``."""
    if problems is None:
        raise DcinetError(problem.format())
    problems.append(problem)


def format_problems(problems: list[Problem]) -> str:
    """The problem lines shared by ``dcinet data check`` and the training loader's refusal."""
    lines = [f"{len(problems)} problem(s) found:"]
    lines += [f"  {p.format()}" for p in problems]
    return "\n".join(lines)
