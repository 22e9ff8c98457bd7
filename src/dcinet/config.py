"""Run configuration: one flat dataclass, YAML presets and ``key=value`` overrides.

A run is described by :class:`Config`. It is built from a preset name (``paper``, ``cpu-tiny``;
files in ``dcinet/configs/``) or a YAML file, then ``key=value`` overrides from the command line
(``epochs=3 layer=3 interaction=cmsi``). The resolved config is saved as ``config.yaml`` in the
run directory so that a run can be reproduced and resumed. Every key has a rule in :data:`RULES`
(type and range); :meth:`Config.validate` checks them all, so a bad value stops a command with one
line naming the key before any work.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dcinet.errors import DcinetError
from dcinet.files import atomic_write_bytes

PRESET_DIR = Path(__file__).parent / "configs"

INTERACTIONS = ("none", "cmsi", "cmci", "cmsi+cmci")
CMCI_MODES = ("paper", "symmetric")  # who receives channels in a CMCI triple (interaction.cmci_sources)
CMSI_BOXES = ("minmax", "beta")  # how CMSI's CutMix box is drawn (interaction.MixupSettings)
CMSI_PAIRS = ("flip", "cross")  # which map CMSI takes each box from (interaction.cmsi)
METHODS = ("dcinet", "fgcrossnet", "probe")
AMP_DTYPES = ("auto", "bf16", "fp16")  # CUDA autocast dtype (dcinet.train.device.amp_dtype)
SAMPLERS = ("random", "class_aware")
SCHEDULERS = ("none", "cosine", "step")
FEATURES = ("softmax", "logits", "embedding")  # what model.encode returns
MIXED_FEATURE = "softmax+embedding"  # the softmax, its ties broken by the embedding (retrieval.mixed)
RETRIEVAL_FEATURES = (*FEATURES, MIXED_FEATURE)  # what evaluate, embed and search may rank by
TEXT_EMBEDDINGS = ("onehot", "embedding", "minilm")
FORMATS = ("folder", "fgxmedia", "cub")
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"  # --device (dcinet.distributed.resolve_device)
# `dcinet ablate --grid`: Tables 1-2, Table 3, Table 4, DCINet against the FGCrossNet baseline (and
# the frozen-encoder probe), the plain network against both CMSI pairings and the probe, and the
# method variants (CMCI triples, CMSI label smoothing, CMSI boxes, CMSI pairs, all of them) against
# the plain network and the paper's DCINet
ABLATION_GRIDS = ("components", "layers", "backbones", "methods", "baselines", "cmci_modes",
                  "cmsi_smoothing", "cmsi_boxes", "cmsi_pairs", "variants")


@dataclass
class Config:
    """Everything a training run depends on (defaults = the paper's §4.2 settings)."""

    # --- method and model (§3.1) ---
    method: str = "dcinet"  # dcinet | fgcrossnet (baseline) | probe (frozen pretrained encoders + a linear head per modality; needs pretrained)
    backbone: str = "resnet50"  # any supported timm model name
    layer: int = 4  # CMSI/CMCI sit after stage `layer` (1..4) of the backbone
    interaction: str = "cmsi+cmci"  # none | cmsi | cmci | cmsi+cmci (Tables 1-2)
    pretrained: str | None = None  # None, a weights file, "efficientnet_lite0", "timm[:model.tag]"
    text_embedding: str = "onehot"  # onehot (eq. 1's delta) | embedding (learned) | minilm (frozen all-MiniLM-L6-v2 token states; an extension, dcinet[text])
    text_channels: int = 64  # width of the text module's Conv1d layers
    # --- inputs ---
    img_size: int = 448  # model input side (center crop)
    resize: int = 510  # images are resized to this side before the center crop
    text_len: int = 448  # characters per text (padded / truncated)
    sample_rate: int = 16000  # audio is resampled to this rate before the STFT
    n_fft: int = 512  # STFT window (samples at sample_rate) of the audio spectrograms
    hop_length: int = 128  # STFT hop (samples): the spectrogram's time resolution
    audio_seconds: float = 0.0  # audio windows of this many seconds (0: the whole recording is one)
    audio_hop_seconds: float | None = None  # seconds between window starts (None: audio_seconds)
    audio_energy_floor_db: float | None = 40.0  # skip windows this many dB below the loudest one
    video_frames: int = 8  # test time: logits averaged over up to this many evenly spaced frames
    # --- CMSI: timm Mixup settings (§4.2) ---
    mixup_alpha: float = 0.8  # CMSI: timm Mixup's alpha of the blend (used when switch_prob < 1)
    cutmix_alpha: float = 1.0  # CMSI: timm's CutMix alpha (cmsi_box beta draws lambda from it)
    cutmix_minmax: list[float] = field(default_factory=lambda: [0.5, 0.6])  # CMSI box sides, share of the map
    mix_prob: float = 1.0  # CMSI: probability that a batch is mixed at all
    switch_prob: float = 1.0  # CMSI: probability of CutMix rather than a blend (paper: always CutMix)
    label_smoothing: float = 0.0  # CMSI's soft targets; not in the paper (timm's default: 0.1)
    cmsi_box: str = "minmax"  # minmax (paper: sides from cutmix_minmax) | beta (lambda ~ Beta(cutmix_alpha))
    cmsi_pairs: str = "flip"  # flip (§4.2 code: shuffle, box from map N-1-i) | cross (eqs. 2-5: from a random map of another modality)
    # --- CMCI (§3.3) ---
    cmci_mode: str = "paper"  # paper (a triple's first map receives) | symmetric (all three receive)
    # --- losses (§3.4, eq. 8) ---
    w_modal: float = 1.0  # weight of L_img + L_aud + L_txt
    w_dual: float = 1.0  # weight of L_dual
    w_center: float = 0.001  # fgcrossnet only
    w_quadruplet: float = 0.1  # fgcrossnet only (the public code's weight; 1.0 collapses the embedding)
    quadruplet_margin1: float = 1.0  # fgcrossnet: alpha_1 of the quadruplet loss, max(0, d(i,j) - d(i,k) + a1)
    quadruplet_margin2: float = 0.5  # fgcrossnet: alpha_2, max(0, d(i,j) - d(l,k) + a2)
    # --- data and batching ---
    format: str = "folder"  # folder | fgxmedia | cub
    cub_train_flag: int = 1  # value of is_training_image that marks train (official CUB: 1)
    lists_dir: str | None = None  # fgxmedia: folder of <modality>/{train,test}.txt (None: ROOT/list)
    num_classes: int | None = None  # fgxmedia: number of classes (None: largest label + 1)
    modalities: list[str] | None = None  # None = every modality the dataset has
    batch_per_modality: int = 8  # b: samples of each modality per step, over all ranks (torchrun: b / ranks each)
    sampler: str = "random"  # random | class_aware (P classes x K per modality)
    samples_per_class: int = 2  # K of the class-aware sampler
    num_workers: int = 2  # training DataLoader worker processes (persist across epochs)
    prefetch_factor: int = 2  # batches each training worker keeps decoded ahead (num_workers > 0)
    decoded_cache_mb: int = 512  # MiB: training tensors decoded once and kept in memory if they fit
    skip_bad: bool = False  # train past unreadable files (listed in RUN/skipped.txt) instead of refusing
    # --- training augmentation (dcinet.data.augment; the training split only; defaults: none) ---
    aug_crop_scale: float = 1.0  # images: RandomResizedCrop's smallest area share (1: no crop)
    aug_flip: float = 0.0  # images: probability of a horizontal flip
    aug_color_jitter: float = 0.0  # images: brightness, contrast and saturation jitter strength
    aug_time_masks: int = 0  # audio: SpecAugment time masks per spectrogram
    aug_time_mask_max: float = 0.1  # audio: widest time mask, share of the spectrogram's width
    aug_freq_masks: int = 0  # audio: SpecAugment frequency masks per spectrogram
    aug_freq_mask_max: float = 0.1  # audio: widest frequency mask, share of its height
    aug_sentence_drop: float = 0.0  # text: probability of dropping each sentence (one stays)
    aug_sentence_shuffle: float = 0.0  # text: probability of shuffling the sentence order
    # --- optimisation (§4.2) ---
    lr: float = 0.001  # SGD learning rate (of the backbone; see new_layer_lr_mult)
    momentum: float = 0.9  # SGD momentum (the paper gives none; 0.9 is the usual value)
    weight_decay: float = 0.0001  # SGD weight decay
    epochs: int = 150  # passes over the training split
    scheduler: str = "none"  # none | cosine | step
    step_size: int = 50  # epochs between lr x0.1 drops (scheduler=step)
    warmup_epochs: int = 0  # the lr climbs linearly, step by step, to the schedule's over these
    # --- recipe options (dcinet.train.recipe; defaults: the paper's plain SGD) ---
    new_layer_lr_mult: float = 1.0  # lr multiplier of the classifier and the text module
    ce_label_smoothing: float = 0.0  # label smoothing of L_img, L_aud, L_txt (fgcrossnet: L_cls)
    grad_clip_norm: float = 0.0  # clip the gradients' total L2 norm to this (0: never)
    ema_decay: float = 0.0  # EMA of the weights, evaluated and saved as the model (0: none)
    accum_steps: int = 1  # batches (micro-steps) whose gradients make one optimizer step
    # --- run ---
    seed: int = 0  # seeds every RNG: initialisation, batches, augmentation, CMSI / CMCI draws
    amp: bool = True  # used on CUDA only
    amp_dtype: str = "auto"  # CUDA autocast dtype: auto (bf16 where the GPU has it, else fp16) | bf16 | fp16 (with a GradScaler)
    channels_last: bool = True  # NHWC weights and inputs (any device; 0.67x efficientnet_lite0's CPU step)
    deterministic: bool = False  # deterministic kernels, bit-identical --resume; the CPU only (refused on CUDA)
    compile: bool = False  # torch.compile the CCRN's two sub-modules (CMSI / CMCI stay eager); not yet measured on a GPU
    sync_bn: bool = False  # under torchrun: SyncBatchNorm, batch statistics over every rank's samples (CUDA)
    eval_feature: str = "softmax"  # softmax | logits | embedding
    log_every: int = 20  # steps between progress lines (and the finite-loss check)
    # --- validation (dcinet.data.splits) and the best checkpoint ---
    val_fraction: float = 0.0  # per-class share of train held out to validate (0: a val split)
    val_every: int = 1  # validate every N epochs and after the last (0: never, no best checkpoint)

    def validate(self) -> Config:
        """Check every key against its rule in :data:`RULES`, then the keys that constrain each
        other; raise :class:`DcinetError` naming the first bad key."""
        for f in dataclasses.fields(self):
            check, what = RULES[f.name]
            value = getattr(self, f.name)
            try:
                ok = check(value)
            except TypeError:  # e.g. a string compared with a number, a list in a set
                ok = False
            if not ok:
                raise DcinetError(f"config key '{f.name}' must be {what}, got {value!r}")
        if self.resize < self.img_size:
            raise DcinetError(f"config key 'resize' ({self.resize}) must be >= img_size ({self.img_size})")
        if self.format != "fgxmedia" and (self.lists_dir is not None or self.num_classes is not None):
            raise DcinetError(f"config keys 'lists_dir' and 'num_classes' apply to format fgxmedia "
                              f"only, not {self.format!r}")
        if self.method == "probe" and self.pretrained is None:
            raise DcinetError("config key 'method' is probe, whose image and audio encoder is the "
                              "backbone with pretrained weights: set pretrained (e.g. efficientnet_lite0)")
        if self.method == "probe" and self.batch_per_modality < 2:
            raise DcinetError("config key 'batch_per_modality' is 1, but method probe's heads "
                              "standardise each batch's features: use 2 or more")
        if self.method == "probe" and self.compile:
            raise DcinetError("config key 'compile' compiles the CCRN's two halves; method probe "
                              "has no CCRN (its encoders are frozen): set compile=false")
        if self.method == "probe" and self.eval_feature == "embedding":
            raise DcinetError("config key 'eval_feature' is embedding, but method probe's modalities "
                              "meet only in the class space: use softmax or logits")
        if self.cmsi_box == "beta" and self.mixup_alpha == 0 and self.cutmix_alpha == 0:
            raise DcinetError("config key 'cmsi_box' is beta, which draws lambda from "
                              "Beta(cutmix_alpha) (or Beta(mixup_alpha) for a blend): one of them "
                              "must be > 0")
        if self.audio_hop_seconds is not None and not 0 < self.audio_hop_seconds <= self.audio_seconds:
            raise DcinetError(f"config key 'audio_hop_seconds' ({self.audio_hop_seconds}) needs windows "
                              f"(audio_seconds > 0) and must be <= audio_seconds ({self.audio_seconds}): "
                              "a longer hop would leave audio out between windows")
        if self.val_fraction > 0 and self.val_every == 0:
            raise DcinetError(f"config key 'val_every' is 0 (never validate), so val_fraction="
                              f"{self.val_fraction} would hold training items out for nothing")
        if self.sampler == "class_aware" and self.batch_per_modality % self.samples_per_class:
            raise DcinetError(
                f"config: batch_per_modality ({self.batch_per_modality}) must be a multiple of "
                f"samples_per_class ({self.samples_per_class}) for the class_aware sampler"
            )
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# A rule: a predicate on one key's value (a TypeError counts as False) and the words for what it
# accepts, completing "config key 'k' must be ...".
Rule = tuple[Callable[[Any], bool], str]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(low: int, high: float = math.inf) -> Rule:
    """An int (not a bool) in ``low..high``."""
    what = f"an integer >= {low}" if high == math.inf else f"an integer in {low}..{high}"
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high), what


def _number(low: float, high: float = math.inf, *, above_low: bool = False,
            below_high: bool = False) -> Rule:
    """A finite int or float from ``low`` to ``high``, each end included unless excluded."""
    if high == math.inf:
        what = f"a number {'>' if above_low else '>='} {low:g}"
    else:
        what = f"a number in {'(' if above_low else '['}{low:g}, {high:g}{')' if below_high else ']'}"
    return (lambda v: _is_number(v) and (v > low if above_low else v >= low)
            and (v < high if below_high else v <= high)), what


def _one_of(allowed: tuple[str, ...]) -> Rule:
    return (lambda v: v in allowed), f"one of {', '.join(allowed)}"


def _optional(rule: Rule) -> Rule:
    check, what = rule
    return (lambda v: v is None or check(v)), f"null or {what}"


def _names(v: object) -> bool:
    """A non-empty list of distinct non-empty strings."""
    return (isinstance(v, list) and len(v) > 0 and len(set(v)) == len(v)
            and all(isinstance(x, str) and x.strip() for x in v))


def _box_range(v: object) -> bool:
    """CutMix's [lo, hi] box side fractions (timm draws sides in ``int(lo * S)..int(hi * S)``)."""
    return isinstance(v, list) and len(v) == 2 and all(map(_is_number, v)) and 0 < v[0] <= v[1] < 1


_FLAG: Rule = (lambda v: isinstance(v, bool)), "true or false"
_TEXT: Rule = (lambda v: isinstance(v, str) and v.strip() != ""), "a non-empty string"
_COUNT = _integer(1)
_WEIGHT = _number(0)
_PROBABILITY = _number(0, 1)

RULES: dict[str, Rule] = {
    "method": _one_of(METHODS),  # probe: and pretrained set, eval_feature not embedding
    "backbone": _TEXT,  # whether timm knows it is checked when the model is built
    "layer": _integer(1, 4),
    "interaction": _one_of(INTERACTIONS),
    "pretrained": _optional(_TEXT),  # not checked on disk: a saved config must load anywhere
    "text_embedding": _one_of(TEXT_EMBEDDINGS),  # minilm: its package is checked when the model is built
    "text_channels": _COUNT,
    "img_size": _COUNT,
    "resize": _COUNT,  # and >= img_size
    "text_len": _COUNT,
    "sample_rate": _COUNT,
    "n_fft": _COUNT,
    "hop_length": _COUNT,
    "audio_seconds": _number(0),  # 0: whole recordings, as the paper and PKU FG-XMedia
    "audio_hop_seconds": _optional(_number(0, above_low=True)),  # and <= audio_seconds, which is > 0
    "audio_energy_floor_db": _optional(_number(0)),  # 0: only the loudest window(s); null: all
    "video_frames": _COUNT,
    # timm's Mixup draws Beta(alpha, alpha) for an alpha > 0 and skips an alpha of 0; it sets the
    # CutMix alpha to 1 whenever cutmix_minmax is given (cmsi_box minmax, the paper), so CutMix is
    # then always active and both alphas may be 0; cmsi_box beta needs one of them > 0.
    "mixup_alpha": _WEIGHT,
    "cutmix_alpha": _WEIGHT,
    "cutmix_minmax": (_box_range, "[lo, hi] with 0 < lo <= hi < 1"),
    "mix_prob": _PROBABILITY,
    "switch_prob": _PROBABILITY,
    "label_smoothing": _number(0, 1, below_high=True),  # 1 would make every target uniform
    "cmsi_box": _one_of(CMSI_BOXES),  # beta: and an alpha > 0
    "cmsi_pairs": _one_of(CMSI_PAIRS),
    "cmci_mode": _one_of(CMCI_MODES),
    "w_modal": _WEIGHT,
    "w_dual": _WEIGHT,
    "w_center": _WEIGHT,
    "w_quadruplet": _WEIGHT,
    "quadruplet_margin1": _WEIGHT,
    "quadruplet_margin2": _WEIGHT,
    "format": _one_of(FORMATS),
    "cub_train_flag": _integer(0, 1),
    "lists_dir": _optional(_TEXT),  # fgxmedia only
    "num_classes": _optional(_COUNT),  # fgxmedia only
    "modalities": _optional((_names, "a non-empty list of distinct modality names")),  # known
    # names, and present in the dataset: checked with the dataset (data.dataset.train_modalities)
    "batch_per_modality": _COUNT,  # and, class-aware, a multiple of samples_per_class; under
    # torchrun a multiple of the ranks: checked when training starts
    "sampler": _one_of(SAMPLERS),
    "samples_per_class": _COUNT,
    "num_workers": _integer(0),
    "prefetch_factor": _COUNT,
    "decoded_cache_mb": _integer(0),  # 0: decode every sample at every step
    "skip_bad": _FLAG,
    "aug_crop_scale": _number(0, 1, above_low=True),  # a share of the picture's area
    "aug_flip": _PROBABILITY,
    "aug_color_jitter": _number(0, 1),  # torchvision: factors drawn in [1 - j, 1 + j]
    "aug_time_masks": _integer(0),
    "aug_time_mask_max": _PROBABILITY,
    "aug_freq_masks": _integer(0),
    "aug_freq_mask_max": _PROBABILITY,
    "aug_sentence_drop": _PROBABILITY,  # 1 keeps one sentence of each text
    "aug_sentence_shuffle": _PROBABILITY,
    "lr": _number(0, above_low=True),
    "momentum": _number(0, 1, below_high=True),
    "weight_decay": _WEIGHT,
    "epochs": _COUNT,
    "scheduler": _one_of(SCHEDULERS),
    "step_size": _COUNT,
    "warmup_epochs": _integer(0),
    "new_layer_lr_mult": _number(0, above_low=True),
    "ce_label_smoothing": _number(0, 1, below_high=True),  # 1 would make every target uniform
    "grad_clip_norm": _WEIGHT,  # 0: no clipping
    "ema_decay": _number(0, 1, below_high=True),  # 0: no EMA; 1 would never move
    "accum_steps": _COUNT,
    "seed": _integer(0, 2**32 - 1),  # what every RNG takes (NumPy's legacy seed: < 2**32)
    "amp": _FLAG,
    "amp_dtype": _one_of(AMP_DTYPES),
    "channels_last": _FLAG,
    "deterministic": _FLAG,  # and not on CUDA (checked when training starts)
    "compile": _FLAG,
    "sync_bn": _FLAG,  # used under torchrun on CUDA only
    "eval_feature": _one_of(FEATURES),
    "log_every": _COUNT,
    "val_fraction": _number(0, 1, below_high=True),  # 1 would leave no training item
    "val_every": _integer(0),
}
"""The rule of every :class:`Config` key, checked by :meth:`Config.validate`."""


def preset_names() -> list[str]:
    """Names of the built-in presets (``paper``, ``cpu-tiny``, ...)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _field_types() -> dict[str, object]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def _coerce(key: str, value: object, hint: object) -> object:
    """Convert a YAML value to the field's type, or raise naming the key."""
    args = typing.get_args(hint)
    optional = type(None) in args and (typing.get_origin(hint) in (typing.Union, types.UnionType))
    if value is None:
        if optional:
            return None
        raise DcinetError(f"config key '{key}' must not be empty")
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    origin = typing.get_origin(base)
    try:
        if origin is list:
            if not isinstance(value, list):
                raise TypeError
            (item,) = typing.get_args(base)
            return [item(v) for v in value]
        if base is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if base is str:
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    name = getattr(base, "__name__", str(base))
    raise DcinetError(f"config key '{key}' expects {name}, got {value!r}")


def _apply(cfg: Config, values: dict, where: str) -> None:
    types_ = _field_types()
    for key, value in values.items():
        if key not in types_:
            raise DcinetError(f"unknown config key '{key}' in {where}")
        setattr(cfg, key, _coerce(key, value, types_[key]))


def parse_overrides(items: list[str]) -> dict:
    """Parse ``key=value`` strings (values in YAML syntax: ``3``, ``true``, ``[0.5,0.6]``)."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise DcinetError(f"override '{item}' is not of the form key=value")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise DcinetError(f"override '{item}': value is not valid YAML ({exc})") from None
    return out


def read_yaml(path: Path) -> dict:
    """Read a YAML mapping, raising :class:`DcinetError` naming the file on any problem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DcinetError(f"config file not found: {path}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DcinetError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DcinetError(f"config file {path} must hold a mapping of key: value")
    return data


def resolve_preset(name_or_path: str) -> Path:
    """A preset name (``paper``) or a path to a YAML file → the file path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    preset = PRESET_DIR / f"{name_or_path}.yaml"
    if not preset.exists():
        raise DcinetError(
            f"unknown config '{name_or_path}': not a file and not a preset ({', '.join(preset_names())})"
        )
    return preset


def load_config(name_or_path: str | None = None, overrides: list[str] | dict | None = None) -> Config:
    """Build a validated :class:`Config` from a preset or YAML file plus overrides."""
    cfg = Config()
    if name_or_path:
        path = resolve_preset(name_or_path)
        _apply(cfg, read_yaml(path), str(path))
    if overrides:
        values = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
        _apply(cfg, values, "command-line overrides")
    return cfg.validate()


def save_config(cfg: Config, path: Path) -> None:
    """Write the resolved config as YAML (reloadable with :func:`load_config`), atomically:
    readers see the old or the new file, never a truncated one."""
    atomic_write_bytes(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode("utf-8"))
