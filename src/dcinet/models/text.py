"""The text processing module (eq. 1): character ids -> an image-sized tensor for the CCRN.

``x_T = Conv2D(Conv1D(Conv1D(delta(x_To))))``, trained jointly with the CCRN. With ``B`` texts of
``L`` character ids, vocabulary ``V``, width ``c`` (``text_channels``) and image side ``S``:

1. ``delta``: ids ``(B, L)`` -> one-hot ``(B, V, L)`` (``embedding="onehot"``; the padding id 0
   gives an all-zero column) or a learned ``nn.Embedding(V, c, padding_idx=0)`` -> ``(B, c, L)``
   (padding rows are zero and receive no gradient).
2. ``Conv1d(V or c -> c, k=3, pad=1)`` + BatchNorm + ReLU -> ``(B, c, L)``.
3. ``Conv1d(c -> S, k=3, pad=1)`` + BatchNorm + ReLU -> ``(B, S, L)``.
4. The 2-D plane: if ``L != S`` the position axis is resized linearly (``align_corners=False``)
   to ``S``; then one input channel -> ``(B, 1, S, S)`` (rows: the second Conv1d's channels, columns: text positions).
5. ``Conv2d(1 -> 3, k=3, pad=1)`` + BatchNorm -> ``(B, 3, S, S)``, the shape of an image input.

``embedding="minilm"`` (an extension, not the paper): step 1 is the frozen all-MiniLM-L6-v2's
last-layer state of each word piece instead of ``delta`` (:meth:`dcinet.models.minilm.MiniLM.token_states`:
``(B, 384, P)``, ``P`` = :data:`~dcinet.models.minilm.MINILM_TOKENS` positions, zero after the
text), read from the same character ids; steps 2-5 are unchanged (``Conv1d(384 -> c)``, the
position axis resized from ``P`` to ``S``). The encoder is no parameter of the module: the
factory attaches it (``module.encoder``) after building, from the installed package, so it is
neither trained nor saved with the run's weights.

The batch normalisations are ours (eq. 1 names only the convolutions): without them the sparse
one-hot input leaves the output nearly constant across texts (per-text differences ~2 % of its
spread at initialisation, against the unit-variance normalised images beside it in the batch),
and the text branch did not learn in short runs; with them the plane is standardised like an
image input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dcinet.config import TEXT_EMBEDDINGS
from dcinet.errors import DcinetError
from dcinet.models.minilm import MINILM_DIM, MINILM_TOKENS

PAD_ID = 0


class TextToImage(nn.Module):
    """Eq. 1: ``(B, L)`` int64 character ids -> ``(B, 3, img_size, img_size)`` float maps.

    ``embedding``: ``onehot`` (eq. 1), ``embedding`` (learned) or ``minilm`` (frozen MiniLM token
    states; set ``encoder`` to a :class:`~dcinet.models.minilm.MiniLM` before the first forward,
    as :func:`~dcinet.models.factory.create_model` does).
    """

    def __init__(self, vocab_size: int, text_len: int, img_size: int, channels: int = 64,
                 embedding: str = "onehot"):
        super().__init__()
        if embedding not in TEXT_EMBEDDINGS:
            raise DcinetError(f"text_embedding must be one of {', '.join(TEXT_EMBEDDINGS)}, "
                              f"got {embedding!r}")
        self.vocab_size, self.text_len, self.img_size = vocab_size, text_len, img_size
        self.embedding = embedding
        self.encoder = None  # the frozen MiniLM of embedding="minilm", attached by the factory
        self.embed = (nn.Embedding(vocab_size, channels, padding_idx=PAD_ID)
                      if embedding == "embedding" else None)
        in_channels = {"onehot": vocab_size, "embedding": channels, "minilm": MINILM_DIM}[embedding]
        self.conv1d_1 = nn.Conv1d(in_channels, channels, kernel_size=3, padding=1)
        self.bn1d_1 = nn.BatchNorm1d(channels)
        self.conv1d_2 = nn.Conv1d(channels, img_size, kernel_size=3, padding=1)
        self.bn1d_2 = nn.BatchNorm1d(img_size)
        self.conv2d = nn.Conv2d(1, 3, kernel_size=3, padding=1)
        self.bn2d = nn.BatchNorm2d(3)

    def encode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """``delta`` of eq. 1: int64 ``(B, L)`` -> float ``(B, V, L)`` one-hot (padding columns
        zero), ``(B, c, L)`` embeddings, or ``(B, 384, P)`` frozen MiniLM token states."""
        if self.embedding == "minilm":
            if self.encoder is None:
                raise DcinetError("text_embedding minilm: no MiniLM encoder attached (build the "
                                  "model with dcinet.models.create_model)")
            return self.encoder.token_states(ids, MINILM_TOKENS).to(self.conv1d_1.weight.dtype)
        if self.embed is not None:
            return self.embed(ids).transpose(1, 2)
        onehot = F.one_hot(ids, self.vocab_size).to(self.conv1d_1.weight.dtype)
        onehot = onehot * (ids != PAD_ID).unsqueeze(-1).to(onehot.dtype)
        return onehot.transpose(1, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """int64 ``(B, L)`` ids in ``[0, V)``, ``L == text_len`` -> float ``(B, 3, S, S)``."""
        if ids.dim() != 2 or ids.shape[1] != self.text_len:
            raise DcinetError(f"text input must be (batch, {self.text_len}) character ids (text_len), "
                              f"got shape {tuple(ids.shape)}")
        x = F.relu(self.bn1d_1(self.conv1d_1(self.encode_ids(ids))))
        x = F.relu(self.bn1d_2(self.conv1d_2(x)))
        if x.shape[-1] != self.img_size:
            x = F.interpolate(x, size=self.img_size, mode="linear", align_corners=False)
        return self.bn2d(self.conv2d(x.unsqueeze(1)))
