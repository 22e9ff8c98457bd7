"""The two cross-modal interactions between the CCRN's sub-modules: CMSI (§3.2) and CMCI (§3.3).

Both act on the concatenated multimodal feature maps ``(N, C, h, w)`` that sub-module 1 outputs
(``N`` = b samples x the modalities of the mini-batch) and return new maps plus soft targets for
``L_dual``. They are pure functions; :class:`CMSI` and :class:`CMCI` are thin module wrappers.
Only the global torch and NumPy RNGs are used, so restoring them (the engine's checkpoints)
replays a run exactly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from timm.data import Mixup
from torch import nn

from dcinet.config import CMCI_MODES, CMSI_PAIRS
from dcinet.errors import DcinetError


@dataclass(frozen=True)
class MixupSettings:
    """The arguments of ``timm.data.Mixup`` used by CMSI (defaults: the paper's §4.2 values,
    except ``label_smoothing``, which the paper does not give).

    Attributes:
        mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob: the five arguments the paper
            lists (0.8, 1.0, [0.5, 0.6], 1.0, 1.0).
        label_smoothing: smoothing of CMSI's soft targets (timm: ``on = 1 - eps + eps / K``,
            ``off = eps / K`` before mixing). The paper does not list it; timm's ``Mixup`` default
            is 0.1, so code that passes only the five listed arguments, as the paper describes,
            ran with 0.1. dcinet's default is 0.0, the value it has always passed: it differs
            from that presumed paper value (``dcinet ablate --grid cmsi_smoothing`` compares them).
        box: how the CutMix box is drawn. ``"minmax"`` (the paper): each side uniform in
            ``int(lo * S) .. int(hi * S) - 1`` from ``cutmix_minmax``, the Beta draw ignored, so
            on a 14 x 14 map [0.5, 0.6] always gives a 7 x 7 box (lambda = 0.75 at every step);
            ``"beta"``: timm's standard CutMix, ``lambda ~ Beta(cutmix_alpha, cutmix_alpha)``, a
            box of side ``int(S * sqrt(1 - lambda))`` centred on a uniform point and clipped at
            the border, lambda corrected to the uncovered area (``cutmix_minmax`` unused).
        pairs: which map each box (or blend) comes from (:func:`cmsi`). ``"flip"`` (§4.2's code
            reading): the batch is shuffled and map ``i`` takes its box from map ``N-1-i``, of
            the same modality about ``(b - 1) / (N - 1)`` of the time; ``"cross"`` (eqs. 2-5):
            from a map of another modality drawn at random.
    """

    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    cutmix_minmax: tuple[float, float] = (0.5, 0.6)
    prob: float = 1.0
    switch_prob: float = 1.0
    label_smoothing: float = 0.0
    box: str = "minmax"
    pairs: str = "flip"

    @classmethod
    def from_config(cls, cfg) -> MixupSettings:
        """Take the ``mixup_alpha, cutmix_alpha, cutmix_minmax, mix_prob, switch_prob,
        label_smoothing, cmsi_box, cmsi_pairs`` fields of a :class:`dcinet.config.Config`."""
        return cls(cfg.mixup_alpha, cfg.cutmix_alpha, tuple(cfg.cutmix_minmax), cfg.mix_prob,
                   cfg.switch_prob, cfg.label_smoothing, cfg.cmsi_box, cfg.cmsi_pairs)


class CMSIResult(NamedTuple):
    """What :func:`cmsi` returns.

    Attributes:
        mixed: float ``(N, C, h, w)``: map ``i`` is input map ``perm[i]`` with a box (or a blend)
            of input map ``partner[i]``.
        soft_targets: float32 ``(N, K)``, row ``i`` = ``lam * y(perm[i]) + (1 - lam) *
            y(partner[i])`` (rows sum to 1; label smoothing as configured).
        perm: int64 ``(N,)`` on the CPU: the base map of each mixed map.
        lam: the weight of every map's own content (CutMix: its uncovered area fraction); 1.0
            exactly when no map was changed.
        partner: int64 ``(N,)`` on the CPU: the input map each box (or blend) came from.
    """

    mixed: torch.Tensor
    soft_targets: torch.Tensor
    perm: torch.Tensor
    lam: float
    partner: torch.Tensor


class _Mixup(Mixup):
    """timm's ``Mixup`` that keeps the lambda of its last batch in ``lam`` (``mode="batch"``: one
    lambda for every map; 1.0 when nothing was mixed: ``prob`` said no, or an empty box)."""

    lam: float = 1.0

    def _mix_batch(self, x):
        self.lam = float(super()._mix_batch(x))
        return self.lam


def _nudged_up(value: float, ok) -> float:
    """The smallest float >= ``value`` for which ``ok`` holds (guards against float rounding)."""
    while not ok(value):
        value = float(np.nextafter(value, 2.0))
    return value


def feasible_minmax(h: int, w: int, minmax: tuple[float, float]) -> tuple[float, float]:
    """The ``cutmix_minmax`` to hand timm for an ``h x w`` map.

    timm draws each box side as ``np.random.randint(int(lo * S), int(hi * S))`` (upper bound
    excluded). A lower end below one pixel (``int(lo * S) == 0``, e.g. [0.3, 0.8] on a 3 x 3
    map) would draw empty boxes that mix nothing: ``lo`` is then raised to the smallest value
    giving sides of at least 1 (never with the paper's ``lo`` 0.5, as maps are at least 2 x 2).
    When the range is empty (with [0.5, 0.6]: sides 2, 3, 4, 6, 8) timm raises
    ``ValueError: low >= high``. Then the upper bound is raised to the smallest value whose
    ``int(hi * S)`` is ``int(lo * S) + 1`` for the empty side(s), so the box side is exactly
    ``int(lo * S)`` (side 2 -> 1, 3 -> 1, 4 -> 2, 6 -> 3, 8 -> 4). When both sides already have a
    non-empty range from at least 1 pixel, the settings are returned unchanged, i.e. timm behaves exactly as in the
    paper (e.g. 14 x 14 layer4 maps at 448 px). On a non-square map whose short side alone is
    empty, the long side's range may widen with the shared upper bound (timm uses one pair for
    both sides); square maps, the only kind DCINet produces, are never affected.
    """
    lo, hi = minmax
    if any(int(lo * s) < 1 for s in (h, w)):
        lo = _nudged_up(1 / min(h, w), lambda v: all(int(v * s) >= 1 for s in (h, w)))
        hi = max(hi, lo)
    empty = [s for s in (h, w) if int(hi * s) <= int(lo * s)]
    if not empty:
        return lo, hi
    new_hi = _nudged_up(max((int(lo * s) + 1) / s for s in empty),
                        lambda v: all(int(v * s) > int(lo * s) for s in empty))
    return lo, new_hi


def cross_partners(modality_ids: torch.Tensor) -> torch.Tensor:
    """Eqs. 2-5's pairing: for every map, a map of another modality drawn uniformly at random.

    One ``torch.rand`` draw per map (global CPU torch RNG). Partners are drawn independently, with
    replacement: a map may be the partner of several maps, or of none. When every map has the same
    modality, the partner is drawn among the other maps instead (there is no other modality).

    Args:
        modality_ids: int64 ``(N,)`` modality of each map (CPU or any device; ``N >= 2``).
    Returns:
        int64 ``(N,)`` on the CPU: ``partner[i]`` is never ``i``, and its modality differs from
        map ``i``'s whenever the batch holds another modality.
    """
    ids = modality_ids.cpu()
    n = ids.numel()
    draws = torch.rand(n)
    partner = torch.empty(n, dtype=torch.int64)
    for k in ids.unique().tolist():
        mine = (ids == k).nonzero().flatten()
        others = (ids != k).nonzero().flatten()
        if others.numel() == 0:  # one modality: any other map
            picks = (draws[mine] * (n - 1)).long().clamp_max(n - 2)
            partner[mine] = picks + (picks >= mine).long()  # skip the map itself
            continue
        picks = (draws[mine] * others.numel()).long().clamp_max(others.numel() - 1)
        partner[mine] = others[picks]
    return partner


def cmsi(maps: torch.Tensor, labels: torch.Tensor, num_classes: int,
         settings: MixupSettings = MixupSettings(), modality_ids: torch.Tensor | None = None
         ) -> CMSIResult:
    """Cross-media spatial interaction: pair the maps, then timm's ``Mixup`` pastes a box of each
    map's partner into it.

    ``settings.pairs == "flip"`` (§4.2's code reading, the default): the maps are permuted along the
    batch dimension with ``torch.randperm`` (global CPU torch RNG), then
    ``timm.data.Mixup(mode="batch")`` pastes one box of the flipped batch into every map: map ``i``
    of the result is shuffled map ``i`` with a box from shuffled map ``N-1-i``, of another
    modality most of the time, not always.

    ``settings.pairs == "cross"`` (eqs. 2-5): no shuffle; map ``i`` takes its box from
    :func:`cross_partners` ``[i]``, a map of another modality drawn at random. timm runs on the
    ``2N`` maps ``[maps, maps[partner].flip(0)]`` so that its flip pairs map ``i`` with its partner;
    the first ``N`` maps and targets are kept. The box, lambda and label smoothing are timm's, as
    with ``flip``.

    With the paper's settings CutMix always runs (``switch_prob`` 1.0), and ``cutmix_minmax``
    fixes each box side to 50-60 % of the map's side, ignoring the Beta draw; timm draws the box
    from NumPy's global RNG. Box sides that timm cannot draw on small maps are handled by
    :func:`feasible_minmax`; ``settings.box == "beta"`` draws the box from lambda instead (see
    :class:`MixupSettings`).

    Args:
        maps: float ``(N, C, h, w)`` with ``h, w >= 2`` (``flip``: ``N`` even); not modified (timm
            writes into the copy that indexing creates, which also keeps the autograd graph intact
            when ``maps`` comes out of an in-place ReLU).
        labels: int64 ``(N,)`` class of each map.
        num_classes: ``K``, the width of the soft targets.
        settings: timm ``Mixup`` arguments and the pairing.
        modality_ids: int64 ``(N,)`` modality of each map; needed by ``cross``.
    Returns:
        :class:`CMSIResult` ``(mixed, soft_targets, perm, lam, partner)``, ``perm`` and ``partner``
        on the CPU (reading them costs no device sync).
    Raises:
        DcinetError: ``flip`` with an odd ``N``, ``cross`` without ``modality_ids`` or with one
            map, an unknown pairing, or a map smaller than 2 x 2.
    """
    n, _, h, w = maps.shape
    if settings.pairs not in CMSI_PAIRS:
        raise DcinetError(f"cmsi_pairs must be one of {', '.join(CMSI_PAIRS)}, got {settings.pairs!r}")
    if settings.pairs == "flip" and n % 2:
        raise DcinetError(f"CMSI needs an even number of feature maps per mini-batch (b x modalities), "
                          f"got {n}; use an even batch_per_modality")
    if settings.pairs == "cross" and (modality_ids is None or n < 2):
        raise DcinetError("CMSI with cmsi_pairs cross needs the modality of each map and at least "
                          "two maps")
    if h < 2 or w < 2:
        raise DcinetError(f"CMSI needs feature maps of at least 2 x 2, got {h} x {w}; "
                          f"raise img_size or use a lower layer")
    minmax = list(feasible_minmax(h, w, settings.cutmix_minmax)) if settings.box == "minmax" else None
    mixer = _Mixup(mixup_alpha=settings.mixup_alpha, cutmix_alpha=settings.cutmix_alpha,
                   cutmix_minmax=minmax, prob=settings.prob, switch_prob=settings.switch_prob,
                   mode="batch", correct_lam=True, label_smoothing=settings.label_smoothing,
                   num_classes=num_classes)
    if settings.pairs == "flip":
        perm = torch.randperm(n)
        on_device = perm.to(maps.device)
        mixed, soft_targets = mixer(maps[on_device], labels[on_device])
        return CMSIResult(mixed, soft_targets.float(), perm, mixer.lam, perm.flip(0))
    partner = cross_partners(modality_ids)
    on_device = partner.to(maps.device)
    # timm's flip pairs row i with row 2N-1-i, which holds map i's partner
    both = torch.cat([maps, maps[on_device].flip(0)])
    mixed, soft_targets = mixer(both, torch.cat([labels, labels[on_device].flip(0)]))
    return CMSIResult(mixed[:n], soft_targets[:n].float(), torch.arange(n), mixer.lam, partner)


def cmci_sources(labels: torch.Tensor, modality_ids: torch.Tensor, mode: str = "paper") -> torch.Tensor:
    """The CMCI matching: which map each channel block of each map is taken from.

    For each label, the maps of each modality with that label form a queue in batch order.
    While >= 3 modalities still hold an unmatched map, the heads of the first three such
    modalities (smallest ids first) form a triple ``(f, s, t)``; then, while 2 modalities remain,
    their heads form a pair ``(a, b)`` that swaps block B1. A map joins at most one interaction;
    the rest (one modality left, or labels seen in one modality only) are untouched.

    ``mode`` says who receives channels in a triple (the matching itself is the same):

    * ``"paper"`` (§3.3: "2/3 of the channel features from the first modality are replaced"):
      ``f`` takes block B1 from ``s`` and B2 from ``t``; ``s`` and ``t`` keep their channels.
    * ``"symmetric"``: every member receives from the other two, cyclically. With the members
      ``(m0, m1, m2) = (f, s, t)``, block ``Bj`` of ``m_r`` comes from ``m_((r + j) mod 3)``:
      ``f`` <- (B1 of ``s``, B2 of ``t``), ``s`` <- (B1 of ``t``, B2 of ``f``), ``t`` <- (B1 of
      ``f``, B2 of ``s``). Each member keeps its own B0 and takes ``C // 3`` channels from each
      partner, so all three maps change instead of one (eq. 6's three exchanges
      ``I <-> A, I <-> T, A <-> T`` for ``l_i^I = l_j^A = l_k^T``). Pairs are already symmetric.

    Args:
        labels: int64 ``(N,)`` hard label of each map.
        modality_ids: int64 ``(N,)`` modality of each map (ids order the modalities).
        mode: ``"paper"`` or ``"symmetric"``.
    Returns:
        int64 ``(3, N)`` on the CPU: row ``j``, column ``i`` = the map whose block ``Bj`` map ``i``
        receives (``i`` itself when unchanged; row 0 is always the identity).
    Raises:
        DcinetError: an unknown ``mode``.
    """
    if mode not in CMCI_MODES:
        raise DcinetError(f"cmci_mode must be one of {', '.join(CMCI_MODES)}, got {mode!r}")
    n = labels.numel()
    sources = [list(range(n)) for _ in range(3)]
    queues: dict[int, dict[int, deque[int]]] = {}
    for i, (label, modality) in enumerate(zip(labels.tolist(), modality_ids.tolist(), strict=True)):
        queues.setdefault(label, {}).setdefault(modality, deque()).append(i)
    for by_modality in queues.values():
        while True:
            ready = [by_modality[m] for m in sorted(by_modality) if by_modality[m]]
            if len(ready) >= 3:
                members = [q.popleft() for q in ready[:3]]
                receivers = range(3) if mode == "symmetric" else range(1)
                for r in receivers:
                    for j in (1, 2):
                        sources[j][members[r]] = members[(r + j) % 3]
            elif len(ready) == 2:
                a, b = (q.popleft() for q in ready)
                sources[1][a], sources[1][b] = b, a
            else:
                break
    return torch.tensor(sources, dtype=torch.int64)


def channel_blocks(channels: int) -> list[tuple[int, int]]:
    """``[(start, stop)]`` of the three contiguous channel blocks B0, B1, B2.

    B1 and B2 hold ``C // 3`` channels each; B0 holds the rest (``C - 2 * (C // 3)``).
    """
    third = channels // 3
    first = channels - 2 * third
    return [(0, first), (first, first + third), (first + third, channels)]


def cmci(maps: torch.Tensor, soft_targets: torch.Tensor, labels: torch.Tensor,
         modality_ids: torch.Tensor, mode: str = "paper"
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-media channel interaction (eq. 6): same-label maps of different modalities exchange
    channel blocks; deterministic (no RNG).

    Matching (see :func:`cmci_sources`): per label, triples of the first three modalities present
    (``paper``: ``f`` takes channels B1 from ``s`` and B2 from ``t``: 1/3 from each, 2/3
    replaced; ``symmetric``: ``s`` and ``t`` receive likewise, cyclically), then pairs (swap B1:
    1/3 each way), blocks from :func:`channel_blocks`. Soft targets follow the channels: a map
    that took fraction ``phi = |Bj| / C`` of its channels from a partner gets
    ``(1 - sum phi) * y_self + sum phi * y_partner``, using the targets before CMCI.

    The matching reads ``labels`` and ``modality_ids`` on the host: pass CPU tensors (as
    :class:`~dcinet.models.dcinet.DCINet` does) and a CUDA step never waits for the GPU here; the
    channel indices and target weights built there go to the device in one non-blocking copy each.

    Args:
        maps: float ``(N, C, h, w)``, any memory format (channels_last stays channels_last).
        soft_targets: float ``(N, K)`` targets of the maps (from CMSI, or one-hot).
        labels: int64 ``(N,)`` hard labels (after CMSI: the label of each map's base map), on
            the CPU (or any device, at the cost of a copy to the host).
        modality_ids: int64 ``(N,)`` modality of each map, permuted like ``labels``, ditto.
        mode: ``"paper"`` or ``"symmetric"`` (:func:`cmci_sources`).
    Returns:
        ``(maps', soft_targets', changed)``: maps of the same shape, dtype and memory format;
        float32 ``(N, K)`` targets (computed in float32 even under autocast, so every row still
        sums to 1); bool ``(N,)`` on the CPU, true for the maps that received a non-empty
        channel block from another map. The inputs are not modified.
    """
    n, channels = maps.shape[:2]
    sources = cmci_sources(labels, modality_ids, mode)
    rows = torch.arange(n)
    changed = torch.zeros(n, dtype=torch.bool)
    weights = torch.zeros(n, n)  # row i: the share of each map's channels in map i
    blocks = [(j, lo, hi) for j, (lo, hi) in enumerate(channel_blocks(channels)) if hi > lo]
    for j, lo, hi in blocks:
        changed |= sources[j] != rows
        weights[rows, sources[j]] += (hi - lo) / channels
    on_device = _to_device(sources, maps.device)
    mixed = torch.empty_like(maps)  # preserve_format: channels_last in, channels_last out
    for j, lo, hi in blocks:  # block Bj of map i is block Bj of map sources[j][i]
        mixed[:, lo:hi] = maps[:, lo:hi].index_select(0, on_device[j])
    with torch.autocast(maps.device.type, enabled=False):
        targets = _to_device(weights, soft_targets.device) @ soft_targets.float()
    return mixed, targets, changed


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on ``device``: on CUDA through pinned memory, without waiting (the caching
    host allocator keeps the pinned copy alive until the transfer is done)."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class CMSI(nn.Module):
    """Module form of :func:`cmsi` holding ``num_classes`` and the Mixup settings (no weights)."""

    def __init__(self, num_classes: int, settings: MixupSettings = MixupSettings()):
        super().__init__()
        self.num_classes = num_classes
        self.settings = settings

    def forward(self, maps: torch.Tensor, labels: torch.Tensor,
                modality_ids: torch.Tensor | None = None) -> CMSIResult:
        """See :func:`cmsi`: ``(N, C, h, w), (N,), (N,) -> (mixed, soft (N, K), perm (N,), lam,
        partner (N,))``."""
        return cmsi(maps, labels, self.num_classes, self.settings, modality_ids)


class CMCI(nn.Module):
    """Module form of :func:`cmci` holding the triple ``mode`` (no weights, no state)."""

    def __init__(self, mode: str = "paper"):
        super().__init__()
        if mode not in CMCI_MODES:
            raise DcinetError(f"cmci_mode must be one of {', '.join(CMCI_MODES)}, got {mode!r}")
        self.mode = mode

    def forward(self, maps: torch.Tensor, soft_targets: torch.Tensor, labels: torch.Tensor,
                modality_ids: torch.Tensor):
        """See :func:`cmci`: ``(N, C, h, w), (N, K), (N,), (N,) -> (maps', soft', changed (N,))``."""
        return cmci(maps, soft_targets, labels, modality_ids, self.mode)
