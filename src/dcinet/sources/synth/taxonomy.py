"""Families and species of the built-in dataset: who shares which attribute, and which words name it.

A class is a *species* of a *family*. The species of one family share the family attributes (body
colour and shape, call timbre, base pitch, syllable length, vocabulary) and differ only in the
subtle ones, two per media modality:

- image: the colour of a small mark and the kind of mark (wing bar, crown patch, eye ring, ...);
- audio: the pitch contour of each call syllable and the number of syllables;
- text: the words for those four attributes (any of them may be left out of a description).

Each family offers 3 mark colours x 2 mark kinds and 3 contours x 2 syllable counts. Species ``j``
takes image combination ``IMAGE_GRID[j]`` and audio combination ``AUDIO_GRID[j]``: all combinations of
one family are distinct, so any two species of a family differ in one or two attributes of each
modality. The taxonomy depends only on the number of classes, never on the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MARK_RGB: dict[str, tuple[int, int, int]] = {
    "red": (205, 35, 40), "yellow": (240, 210, 40), "white": (245, 245, 238),
    "blue": (45, 95, 215), "black": (22, 22, 26), "orange": (240, 125, 25),
}
"""Mark colours: name -> RGB (uint8)."""

COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "scarlet", "crimson"), "yellow": ("yellow", "lemon", "golden"),
    "white": ("white", "snowy", "chalk-white"), "blue": ("blue", "azure", "cobalt"),
    "black": ("black", "jet-black", "sooty"), "orange": ("orange", "tangerine", "amber"),
}
KIND_WORDS: dict[str, tuple[str, ...]] = {
    "wing bar": ("wing bar", "wing stripe", "bar across the wing"),
    "crown patch": ("crown patch", "cap", "crown"),
    "eye ring": ("eye ring", "eye-ring", "ring around the eye"),
    "throat patch": ("throat patch", "bib", "throat spot"),
    "tail band": ("tail band", "tail stripe", "band across the tail"),
}
KIND_SHORT: dict[str, str] = {"wing bar": "Bar", "crown patch": "Crown", "eye ring": "Eyering",
                              "throat patch": "Throat", "tail band": "Tailband"}
CONTOUR_WORDS: dict[str, tuple[str, ...]] = {
    "rising": ("rising", "upslurred", "ascending"), "falling": ("falling", "downslurred", "descending"),
    "flat": ("flat", "level", "monotone"), "warble": ("warbling", "wavering", "quavering"),
    "arch": ("arched", "peaked", "rise-and-fall"),
}
NOTES_WORDS: dict[int, tuple[str, ...]] = {
    2: ("two", "a pair of", "double"), 3: ("three", "triple", "a trio of"),
    4: ("four", "quadruple", "a run of four"), 5: ("five", "quintuple", "a run of five"),
}
"""Synonyms per subtle attribute value; no word of one value is a word of another."""

IMAGE_GRID: tuple[tuple[int, int], ...] = ((0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (2, 1))
"""Species j's (mark colour index, mark kind index) into its family's options."""
AUDIO_GRID: tuple[tuple[int, int], ...] = ((0, 0), (0, 1), (1, 0), (1, 1), (2, 1), (2, 0))
"""Species j's (contour index, syllable-count index) into its family's options."""


@dataclass(frozen=True)
class Family:
    """Attributes shared by every species of a family.

    Shape: ``aspect`` (body length / height), ``head`` (head radius), ``tail`` and ``beak`` lengths,
    in image half-widths. Call: ``harmonics`` (relative amplitudes of partials 1, 2, ...),
    ``am_hz`` / ``am_depth`` (amplitude modulation), ``base_hz`` (mean pitch), ``syllable_s`` and
    ``gap_s`` (syllable and pause lengths, seconds, at tempo 1).
    """

    name: str
    nouns: tuple[str, ...]
    body_word: str
    body_rgb: tuple[int, int, int]
    shape_word: str
    aspect: float
    head: float
    tail: float
    beak: float
    timbre_word: str
    harmonics: tuple[float, ...]
    am_hz: float
    am_depth: float
    base_hz: float
    syllable_s: float
    gap_s: float
    mark_colours: tuple[str, str, str]
    mark_kinds: tuple[str, str]
    contours: tuple[str, str, str]
    notes: tuple[int, int]


FAMILIES: tuple[Family, ...] = (
    Family("Marsh Warbler", ("warbler", "reed warbler"), "olive", (118, 128, 62), "slender", 1.9, 0.13,
           0.30, 0.10, "buzzy", (1.0, 0.6, 0.45, 0.3), 90.0, 0.35, 3200.0, 0.16, 0.09,
           ("red", "yellow", "white"), ("wing bar", "crown patch"), ("rising", "falling", "warble"), (3, 4)),
    Family("Ridge Finch", ("finch", "ridge finch"), "chestnut", (150, 82, 48), "stout", 1.35, 0.17,
           0.22, 0.09, "clear", (1.0,), 0.0, 0.0, 2300.0, 0.20, 0.12,
           ("yellow", "white", "blue"), ("eye ring", "throat patch"), ("flat", "rising", "arch"), (2, 3)),
    Family("Dune Pipit", ("pipit", "dune pipit"), "sandy", (202, 172, 122), "slim", 1.75, 0.12,
           0.34, 0.08, "thin", (1.0, 0.15), 0.0, 0.0, 4600.0, 0.12, 0.08,
           ("black", "red", "orange"), ("tail band", "wing bar"), ("falling", "warble", "flat"), (4, 5)),
    Family("Cedar Thrush", ("thrush", "cedar thrush"), "grey-brown", (112, 100, 94), "round", 1.5, 0.15,
           0.26, 0.07, "fluty", (1.0, 0.3, 0.1), 6.0, 0.2, 1700.0, 0.22, 0.13,
           ("white", "orange", "yellow"), ("crown patch", "throat patch"), ("arch", "flat", "rising"), (2, 4)),
    Family("Reef Tern", ("tern", "reef tern"), "pale grey", (196, 202, 208), "long-winged", 2.1, 0.12,
           0.40, 0.13, "harsh", (1.0, 0.8, 0.7, 0.6, 0.5), 140.0, 0.5, 2700.0, 0.18, 0.10,
           ("black", "red", "blue"), ("eye ring", "tail band"), ("warble", "falling", "arch"), (3, 5)),
    Family("Moss Wren", ("wren", "moss wren"), "dusky", (82, 62, 48), "tiny", 1.3, 0.14,
           0.18, 0.07, "trilled", (1.0, 0.2), 32.0, 0.8, 5400.0, 0.14, 0.07,
           ("white", "yellow", "orange"), ("wing bar", "eye ring"), ("rising", "flat", "falling"), (2, 5)),
    Family("Cliff Swallow", ("swallow", "cliff swallow"), "slate", (72, 84, 104), "sleek", 2.2, 0.12,
           0.36, 0.06, "twittering", (1.0, 0.4), 18.0, 0.5, 3900.0, 0.10, 0.06,
           ("orange", "white", "red"), ("throat patch", "crown patch"), ("arch", "warble", "rising"), (4, 5)),
    Family("Heath Bunting", ("bunting", "heath bunting"), "buff", (214, 186, 140), "compact", 1.55, 0.15,
           0.28, 0.08, "ringing", (1.0, 0.5, 0.25), 0.0, 0.0, 2900.0, 0.15, 0.14,
           ("black", "blue", "red"), ("crown patch", "wing bar"), ("falling", "arch", "flat"), (2, 3)),
)
"""The family table, in the order classes are assigned to families."""

SPECIES_PER_FAMILY_MAX = len(IMAGE_GRID)
MAX_CLASSES = len(FAMILIES) * SPECIES_PER_FAMILY_MAX
FAMILY_SIZE = 4
"""Species per family while the families last; beyond 4 x len(FAMILIES) classes families grow."""


@dataclass(frozen=True)
class Species:
    """One class: its family, its subtle attributes and its folder name (``Family_Name_Colour_Kind``)."""

    family: Family
    mark_colour: str
    mark_kind: str
    contour: str
    notes: int

    @property
    def name(self) -> str:
        return f"{self.family.name.replace(' ', '_')}_{self.mark_colour.title()}_{KIND_SHORT[self.mark_kind]}"

    def describe(self) -> dict:
        """A JSON-ready description: family attributes, subtle attributes and their words."""
        f = self.family
        return {
            "name": self.name,
            "family": f.name,
            "family_attributes": {
                "nouns": list(f.nouns), "body_colour": f.body_word, "body_rgb": list(f.body_rgb),
                "shape": f.shape_word, "call_timbre": f.timbre_word, "base_pitch_hz": f.base_hz,
                "syllable_s": f.syllable_s,
            },
            "subtle_attributes": {"mark_colour": self.mark_colour, "mark_kind": self.mark_kind,
                                  "call_contour": self.contour, "call_notes": self.notes},
            "attribute_words": {"mark_colour": list(COLOUR_WORDS[self.mark_colour]),
                                "mark_kind": list(KIND_WORDS[self.mark_kind]),
                                "call_contour": list(CONTOUR_WORDS[self.contour]),
                                "call_notes": list(NOTES_WORDS[self.notes])},
        }


def family_sizes(classes: int) -> list[int]:
    """How many species each family gets: ``ceil(classes / 4)`` families (at most all of them),
    sizes as equal as possible, larger ones first. ``sum == classes``."""
    n_families = min(math.ceil(classes / FAMILY_SIZE), len(FAMILIES))
    base, extra = divmod(classes, n_families)
    return [base + (1 if i < extra else 0) for i in range(n_families)]


def build_taxonomy(classes: int) -> list[Species]:
    """The species of a dataset of ``classes`` classes, family by family (2 <= classes <= MAX_CLASSES)."""
    if not 2 <= classes <= MAX_CLASSES:
        raise ValueError(f"classes must be in [2, {MAX_CLASSES}], got {classes}")
    species = []
    for family, size in zip(FAMILIES, family_sizes(classes), strict=False):
        for j in range(size):
            colour, kind = IMAGE_GRID[j]
            contour, notes = AUDIO_GRID[j]
            species.append(Species(family, family.mark_colours[colour], family.mark_kinds[kind],
                                   family.contours[contour], family.notes[notes]))
    return species
