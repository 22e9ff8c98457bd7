"""The built-in fine-grained tri-modal dataset (``dcinet data synth``).

:func:`synthesize` writes ``OUT/<modality>/<split>/<class>/<file>`` (image PNG, audio WAV, text
TXT) and ``OUT/synth.json``. Classes are bird species grouped into families (:mod:`.taxonomy`);
species of a family differ only in a small mark (:mod:`.image`), the call's contour and number of
notes (:mod:`.audio`) and the words for those (:mod:`.text`).
"""

from dcinet.sources.synth.generate import MANIFEST, split_sizes, synthesize

__all__ = ["MANIFEST", "split_sizes", "synthesize"]
