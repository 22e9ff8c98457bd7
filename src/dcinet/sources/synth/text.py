"""Write one field note about a bird: 1-3 sentences naming some of its attributes.

A note has a look sentence (family words, maybe the mark's colour and kind), a call sentence (maybe
the contour and the number of notes) or both, and sometimes a distractor sentence (habitat, weather,
observer) that carries no class information. Each subtle attribute is named with probability
:data:`MENTION_P`, through one of its synonyms, so some notes say nothing that tells the species of
a family apart. No distractor or family word is an attribute word of any class.
"""

from __future__ import annotations

import numpy as np

from dcinet.sources.synth.taxonomy import (
    COLOUR_WORDS,
    CONTOUR_WORDS,
    KIND_WORDS,
    NOTES_WORDS,
    Species,
)

MENTION_P = 0.55
"""Probability that a note names a given subtle attribute."""

DISTRACTORS: tuple[str, ...] = (
    "Seen near the reeds at dawn.", "It was feeding on seeds by the path.", "Overcast and windy.",
    "Light drizzle all morning.", "Observed from the hide.", "Heard before it was seen.",
    "It perched briefly on a fence post.", "Warm afternoon, little wind.", "Photographed at some distance.",
    "Found along the edge of the wood.", "The light was poor.", "Recorded on the north trail.",
    "Foraging in low scrub.", "Near the old quarry.", "Sunny after rain.", "Notes taken in a hurry.",
)
"""Sentences without class information."""


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _look_sentence(species: Species, rng: np.random.Generator, colour: bool, kind: bool) -> str:
    """The appearance sentence; names the mark colour / kind when asked."""
    fam = species.family
    noun = _pick(rng, fam.nouns) if rng.random() < 0.8 else "bird"
    adjectives = [w for w, p in ((fam.shape_word, 0.4), (fam.body_word, 0.5)) if rng.random() < p]
    subject = _article(" ".join([*adjectives, noun]))
    colour_word = _pick(rng, COLOUR_WORDS[species.mark_colour])
    kind_word = _pick(rng, KIND_WORDS[species.mark_kind])
    if colour and kind:
        mark = _article(f"{colour_word} {kind_word}")
    elif kind:
        mark = _article(kind_word)
    elif colour:
        mark = _article(f"small {colour_word} mark")
    else:
        mark = f"{fam.body_word} plumage"
    forms = (f"{subject} with {mark}.", f"{subject} showing {mark}.", f"Saw {subject}; it had {mark}.",
             f"{mark[0].upper()}{mark[1:]} on {subject}.")
    sentence = _pick(rng, forms)
    return sentence[0].upper() + sentence[1:]


def _call_sentence(species: Species, rng: np.random.Generator, contour: bool, notes: bool) -> str:
    """The call sentence; names the contour / the number of notes when asked."""
    timbre = species.family.timbre_word if rng.random() < 0.6 else ""
    shape = _pick(rng, CONTOUR_WORDS[species.contour]) if contour else ""
    count = _pick(rng, NOTES_WORDS[species.notes]) if notes else _pick(rng, ("several", "a few", "some"))
    words = " ".join(w for w in (shape, timbre) if w)
    forms = (f"Its call was {count} {words} notes.", f"The song: {count} {words} notes.",
             f"It called with {count} {words} notes.")
    return " ".join(_pick(rng, forms).split())


def write_note(species: Species, rng: np.random.Generator) -> str:
    """A field note (1-3 sentences, one line, UTF-8-safe ASCII) about one bird of ``species``."""
    colour, kind, contour, notes = (rng.random() < MENTION_P for _ in range(4))
    sentences = []
    has_look, has_call = rng.random() < 0.8, rng.random() < 0.6
    if not (has_look or has_call):
        has_look = True
    if has_look:
        sentences.append(_look_sentence(species, rng, colour, kind))
    if has_call:
        sentences.append(_call_sentence(species, rng, contour, notes))
    if rng.random() < 0.5:
        sentences.insert(int(rng.integers(len(sentences) + 1)), _pick(rng, DISTRACTORS))
    if len(sentences) > 1 and rng.random() < 0.3:
        sentences.reverse()
    return " ".join(sentences)
