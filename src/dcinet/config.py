"""Run configuration: one flat dataclass, YAML presets and ``key=value`` overrides.

A run is described by :class:`Config`. It is built from a preset name (``paper``, ``cpu-tiny``;
files in ``dcinet/configs/``) or a YAML file, then ``key=value`` overrides from the command line
(``epochs=3 layer=3 interaction=cmsi``). The resolved config is saved as ``config.yaml`` in the
run directory so that a run can be reproduced and resumed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dcinet.errors import DcinetError
from dcinet.files import atomic_write_bytes

PRESET_DIR = Path(__file__).parent / "configs"

INTERACTIONS = ("none", "cmsi", "cmci", "cmsi+cmci")
METHODS = ("dcinet", "fgcrossnet")
SAMPLERS = ("random", "class_aware")
SCHEDULERS = ("none", "cosine", "step")
FEATURES = ("softmax", "logits", "embedding")
FORMATS = ("folder", "fgxmedia", "cub")
# `dcinet ablate --grid`: Tables 1-2, Table 3, Table 4, and DCINet against the FGCrossNet baseline
ABLATION_GRIDS = ("components", "layers", "backbones", "methods")


@dataclass
class Config:
    """Everything a training run depends on (defaults = the paper's §4.2 settings)."""

    # --- method and model (§3.1) ---
    method: str = "dcinet"  # dcinet | fgcrossnet (baseline)
    backbone: str = "resnet50"  # any supported timm model name
    layer: int = 4  # CMSI/CMCI sit after stage `layer` (1..4) of the backbone
    interaction: str = "cmsi+cmci"  # none | cmsi | cmci | cmsi+cmci (Tables 1-2)
    pretrained: str | None = None  # None, a local weights file, or "efficientnet_lite0"
    text_embedding: str = "onehot"  # onehot (eq. 1's delta) | embedding
    text_channels: int = 64  # width of the text module's Conv1d layers
    # --- inputs ---
    img_size: int = 448  # model input side (center crop)
    resize: int = 510  # images are resized to this side before the center crop
    text_len: int = 448  # characters per text (padded / truncated)
    sample_rate: int = 16000  # audio is resampled to this rate before the STFT
    n_fft: int = 512
    hop_length: int = 128
    video_frames: int = 8  # test time: logits averaged over up to this many evenly spaced frames
    # --- CMSI: timm Mixup settings (§4.2) ---
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    cutmix_minmax: list[float] = field(default_factory=lambda: [0.5, 0.6])
    mix_prob: float = 1.0
    switch_prob: float = 1.0
    label_smoothing: float = 0.0
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
    modalities: list[str] | None = None  # None = every modality the dataset has
    batch_per_modality: int = 8  # b: samples of each modality per step
    sampler: str = "random"  # random | class_aware (P classes x K per modality)
    samples_per_class: int = 2  # K of the class-aware sampler
    num_workers: int = 2
    skip_bad: bool = False
    # --- optimisation (§4.2) ---
    lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 0.0001
    epochs: int = 150
    scheduler: str = "none"  # none | cosine | step
    step_size: int = 50  # epochs between lr x0.1 drops (scheduler=step)
    # --- run ---
    seed: int = 0
    amp: bool = True  # used on CUDA only
    channels_last: bool = True  # used on CUDA only
    deterministic: bool = False
    eval_feature: str = "softmax"  # softmax | logits | embedding
    log_every: int = 20

    def validate(self) -> Config:
        """Check values; raise :class:`DcinetError` naming the first bad key."""
        _choice("method", self.method, METHODS)
        _choice("interaction", self.interaction, INTERACTIONS)
        _choice("sampler", self.sampler, SAMPLERS)
        _choice("scheduler", self.scheduler, SCHEDULERS)
        _choice("eval_feature", self.eval_feature, FEATURES)
        _choice("format", self.format, FORMATS)
        _choice("text_embedding", self.text_embedding, ("onehot", "embedding"))
        if not 1 <= self.layer <= 4:
            raise DcinetError(f"config key 'layer' must be 1..4, got {self.layer}")
        for key in ("img_size", "resize", "text_len", "batch_per_modality", "epochs",
                    "samples_per_class", "sample_rate", "n_fft", "hop_length", "text_channels",
                    "video_frames"):
            if getattr(self, key) <= 0:
                raise DcinetError(f"config key '{key}' must be positive, got {getattr(self, key)}")
        if self.resize < self.img_size:
            raise DcinetError(f"config key 'resize' ({self.resize}) must be >= img_size ({self.img_size})")
        lo_hi = self.cutmix_minmax
        if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1] < 1:
            raise DcinetError(f"config key 'cutmix_minmax' must be [lo, hi] with 0 < lo <= hi < 1, got {lo_hi}")
        for key in ("w_center", "w_quadruplet", "quadruplet_margin1", "quadruplet_margin2"):
            if getattr(self, key) < 0:
                raise DcinetError(f"config key '{key}' must be >= 0, got {getattr(self, key)}")
        if self.lr <= 0:
            raise DcinetError(f"config key 'lr' must be positive, got {self.lr}")
        if self.sampler == "class_aware" and self.batch_per_modality % self.samples_per_class:
            raise DcinetError(
                f"config: batch_per_modality ({self.batch_per_modality}) must be a multiple of "
                f"samples_per_class ({self.samples_per_class}) for the class_aware sampler"
            )
        if self.cub_train_flag not in (0, 1):
            raise DcinetError(f"config key 'cub_train_flag' must be 0 or 1, got {self.cub_train_flag}")
        if self.num_workers < 0:
            raise DcinetError("config key 'num_workers' must be >= 0")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _choice(key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise DcinetError(f"config key '{key}' must be one of {', '.join(allowed)}; got {value!r}")


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
