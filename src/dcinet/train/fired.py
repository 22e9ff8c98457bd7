"""How often CMSI and CMCI actually fired: the maps each changed, per modality, over training.

Each training step of :class:`~dcinet.models.dcinet.DCINet` returns its counts (``"fired"``,
:meth:`~dcinet.models.dcinet.DCINet.dual_loss`): ``{interaction: {modality: {"maps": n,
"changed": c, ...}}}``, plain ints. The loop adds up an epoch's steps (:func:`add_counts`), sums
the epoch over the ranks (:func:`sum_over_ranks`), and keeps the running total in every checkpoint's
state, so a resumed run continues the count of the epochs it restored (the resumed epochs replay
the same draws, so the totals equal an uninterrupted run's). After every epoch ``run.json`` gets
:func:`fired_record` of the total as ``interactions_fired``.
"""

from __future__ import annotations

from dcinet.distributed import DistInfo, all_gather

RUN_KEY = "interactions_fired"
"""The key of :func:`fired_record` in ``run.json``."""


def add_counts(total: dict, step: dict) -> dict:
    """Add ``step``'s counts into ``total`` in place (both ``{interaction: {modality: {key:
    int}}}``; keys missing from ``total`` start at 0) and return ``total``."""
    for interaction, by_modality in step.items():
        for modality, counts in by_modality.items():
            slot = total.setdefault(interaction, {}).setdefault(modality, {})
            for key, value in counts.items():
                slot[key] = slot.get(key, 0) + int(value)
    return total


def sum_over_ranks(counts: dict, dist: DistInfo) -> dict:
    """Every rank's ``counts`` added up, on every rank (``counts`` itself for one process)."""
    if not dist.enabled:
        return counts
    total: dict = {}
    for rank_counts in all_gather(counts, dist):
        add_counts(total, rank_counts)
    return total


def fired_record(counts: dict, epochs: int) -> dict:
    """What ``run.json`` records: the counts of ``epochs`` epochs, each count but ``maps`` also
    as a fraction of ``maps``.

    Returns:
        ``{"epochs": epochs, interaction: {modality: {"maps": n, "changed": c,
        "changed_fraction": c / n, ...}}}``; for CMSI also ``cross_modal`` and
        ``same_modality`` (maps whose box or blend came from a map of another modality, or of
        the same one) with ``cross_modal_fraction`` and ``same_modality_fraction``: the share of
        a modality's maps that were mixed within their own modality (``cmsi_pairs`` flip: about
        ``(b - 1) / (N - 1)`` of them; cross: 0 with two modalities or more). Fractions are
        rounded to 6 decimals; an empty ``counts`` (no interaction) leaves only ``epochs``.
    """
    record: dict = {"epochs": epochs}
    for interaction, by_modality in sorted(counts.items()):
        record[interaction] = {}
        for modality, c in by_modality.items():
            fractions = {f"{k}_fraction": round(v / c["maps"], 6) if c["maps"] else None
                         for k, v in c.items() if k != "maps"}
            record[interaction][modality] = {**c, **fractions}
    return record
