"""Typed run configuration: dataclasses loaded from YAML and overridden by ``--set key=value``.

Defaults are the paper's recipe (Sec. 3.2): Adam, lr 1e-3, batch 8, 100 epochs, Eq. 6
weights (1, 1, 10). A config file states only what differs from them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from strokeseg.errors import StrokesegError

SCHEDULES = ("constant", "cosine")
SELECT_BY = ("subject", "pooled")


@dataclass
class ModelConfig:
    name: str = "unetpp_mtl"
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None  # user-provided initial weights (state dict or checkpoint)
    output_prior: float | None = None  # output bias starts at logit(prior) (None: PyTorch init)

    def __post_init__(self) -> None:
        prior = self.output_prior
        if prior is not None and (
            isinstance(prior, bool) or not isinstance(prior, (int, float)) or not 0 < prior < 1
        ):
            raise StrokesegError(f"model.output_prior {prior!r}: expected a number in (0, 1)")


@dataclass
class LossConfig:
    """Eq. 2 (alpha, beta), Eq. 6 (gamma, lam, delta), Dice smoothing, edge band radius."""

    gamma: float = 1.0
    lam: float = 1.0
    delta: float = 10.0
    alpha: float = 1.0
    beta: float = 1.0
    smooth: float = 1e-5
    edge_radius: int = 1


@dataclass
class DataConfig:
    layout: str | None = None  # None: detect
    split: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])  # counts or fractions
    stratify: bool = False  # split stratified by lesion volume (False: random, as the paper)
    window: str = "brain"  # CT Hounsfield window: brain (W80/L40) or stroke (W40/L40)
    lesion_fraction: float | None = None  # share of sampled slices that hold lesion
    patch_size: int | None = None  # train on random square patches (None: whole slices)
    patch_positive: float = 0.5  # on lesion slices, share of patches centred on lesion
    context_slices: int = 0  # 2.5D: k slices each side as extra input channels (2k+1 in all)
    augment: bool = False  # MONAI spatial + intensity augmentation (data/augment.py)
    val_slice_stride: int = 1  # validate on every k-th slice of each validation subject
    num_workers: int = 0
    cache_dir: str | None = None  # None: RUN/cache

    def __post_init__(self) -> None:
        if self.val_slice_stride < 1:
            raise StrokesegError(f"data.val_slice_stride {self.val_slice_stride}: must be >= 1")
        if not isinstance(self.context_slices, int) or self.context_slices < 0:
            raise StrokesegError(f"data.context_slices {self.context_slices!r}: must be >= 0")


@dataclass
class OptimConfig:
    lr: float = 1e-3
    batch_size: int = 8
    epochs: int = 100
    weight_decay: float = 0.0  # Adam's (coupled) decay on every parameter
    l2: float = 0.0  # Keras-style L2 penalty l2 * sum(w^2) on conv kernels (UNet++ code: 1e-4)
    schedule: str = "constant"  # constant (the paper) or cosine (to 0 over the run's steps)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise StrokesegError(
                f"optim.schedule {self.schedule!r}: expected one of {', '.join(SCHEDULES)}"
            )


@dataclass
class TrainerConfig:
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str | None = None  # None: 16-mixed on GPU, 32-true on CPU
    limit_train_batches: float = 1.0
    limit_val_batches: float = 1.0
    check_val_every_n_epoch: int = 1
    select_by: str = "subject"  # best.ckpt by mean per-subject Dice, or Dice pooled over slices

    def __post_init__(self) -> None:
        if self.select_by not in SELECT_BY:
            raise StrokesegError(
                f"trainer.select_by {self.select_by!r}: expected one of {', '.join(SELECT_BY)}"
            )


@dataclass
class PostprocessConfig:
    """Decided on the validation subjects when training ends (not in the paper): the
    probability threshold and the minimum lesion volume (26-connected components, mm3) with
    the best mean per-subject Dice, stored in ``best.ckpt``."""

    fit: bool = True
    thresholds: list[float] = field(default_factory=lambda: [0.3, 0.4, 0.5, 0.6, 0.7])
    min_lesion_mm3: list[float] = field(
        default_factory=lambda: [0.0, 10.0, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0]
    )


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        every = self.trainer.check_val_every_n_epoch
        if not isinstance(every, int) or every < 1:
            raise StrokesegError(f"trainer.check_val_every_n_epoch {every!r}: must be >= 1")
        if self.optim.epochs % every:
            raise StrokesegError(
                f"optim.epochs {self.optim.epochs} must be a multiple of "
                f"trainer.check_val_every_n_epoch {every}, so the last epoch is validated and "
                "saved"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise StrokesegError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(known)}"
        )
    defaults = cls()
    kwargs = {}
    for name, value in values.items():
        section = getattr(defaults, name)
        if dataclasses.is_dataclass(section):
            if not isinstance(value, dict):
                raise StrokesegError(f"{where}.{name}: expected a section of keys")
            value = _build(type(section), value, f"{where}.{name}")
        elif isinstance(section, float) and isinstance(value, (int, str)):
            value = _to_number(value, float, f"{where}.{name}")
        elif isinstance(section, int) and not isinstance(section, bool) and isinstance(value, str):
            value = _to_number(value, int, f"{where}.{name}")
        kwargs[name] = value
    return cls(**kwargs)


def _to_number(value: Any, kind: type, where: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise StrokesegError(f"{where}: expected a {kind.__name__}, got {value!r}") from None


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise StrokesegError(f"--set {dotted}: {key} is not a section")
    node[leaf] = value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["optim.lr=1e-4", "model.kwargs.width=0.25"]`` -> a nested dict (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise StrokesegError(f"--set {item!r}: expected key=value")
        _set(tree, key.strip(), yaml.safe_load(raw))
    return tree


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: sections merge key by key, other values are replaced."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


PACKAGED_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def resolve_config(path: str | Path) -> Path:
    """A config file path, or the name of a shipped config (``tiny``, ``atlas/table2_unetpp``)."""
    path = Path(path)
    if path.exists():
        return path
    shipped = PACKAGED_CONFIGS / f"{path.as_posix().removesuffix('.yaml')}.yaml"
    return shipped if shipped.exists() else path


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or start from defaults), apply ``--set`` overrides, validate keys."""
    values: dict[str, Any] = {}
    if path is not None:
        path = resolve_config(path)
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise StrokesegError(f"{path}: config file not found") from None
        except yaml.YAMLError as error:
            raise StrokesegError(f"{path}: not valid YAML ({error})".replace("\n", " ")) from None
        if not isinstance(values, dict):
            raise StrokesegError(f"{path}: a config must be a mapping of sections")
    values = merge(values, parse_overrides(list(overrides)))
    return _build(Config, values, str(path) if path else "config")


def save_config(config: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
