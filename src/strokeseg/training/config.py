"""Typed run configuration: pydantic models loaded from YAML and overridden by ``--set key=value``.

Defaults are the paper's recipe (Sec. 3.2): Adam, lr 1e-3, a global batch of 8, 100 epochs,
Eq. 6 weights (1, 1, 10). A config file states only what differs from them; two defaults go
beyond the paper, and the paper's configs turn them off: mixed precision on GPU and the
post-processing fitted on validation (docs/deviations.md).

Every field is checked by type and range when the config is built (pydantic v2: typed fields
with declared constraints instead of hand-written checks), so a bad value is one line naming
the dotted key, before a run folder exists. Unknown keys are refused with the nearest name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from strokeseg.data.intensity import CT_WINDOWS
from strokeseg.data.layouts import LAYOUTS
from strokeseg.data.preprocessing import Preprocessing
from strokeseg.errors import StrokesegError
from strokeseg.models import create_on_meta, first_filters
from strokeseg.models.multitask import laplacian_default
from strokeseg.training.config_errors import one_line

SCHEDULES = ("constant", "cosine")
SELECT_BY = ("subject", "pooled")
WINDOWS = tuple(CT_WINDOWS)
PRECISIONS = (
    "transformer-engine",
    "transformer-engine-float16",
    "16-true",
    "16-mixed",
    "bf16-true",
    "bf16-mixed",
    "32-true",
    "64-true",
)
"""Lightning 2's precision strings (the bare 16/32/64 of Lightning 1 are refused)."""
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu")


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


Float = Annotated[float, BeforeValidator(_no_bool)]
Int = Annotated[int, BeforeValidator(_no_bool)]
Fraction = Annotated[Float, Field(ge=0, le=1)]
Probability = Annotated[Float, Field(gt=0, lt=1)]


def _split(value: list[Any]) -> list[int | float]:
    if len(value) != 3 or any(
        isinstance(v, bool) or not isinstance(v, (int, float)) for v in value
    ):
        raise ValueError("expected three numbers [train, val, test] (counts or fractions)")
    if any(v < 0 for v in value):
        raise ValueError("split sizes must be >= 0")
    if not all(isinstance(v, int) for v in value) and abs(sum(value) - 1) > 1e-6:
        raise ValueError("split fractions must add up to 1 (or give three integer counts)")
    return value


def _batch_limit(value: Any) -> int | float:
    """Lightning's limit as Lightning reads it: an integer is a count of batches (1 included),
    a float in (0, 1] a fraction of them. A whole float above 1 (``2.0``) is the count it
    names, as Lightning refuses fractions above 1."""
    _no_bool(value)
    if isinstance(value, int):
        if value < 1:
            raise ValueError("expected a number of batches >= 1 or a fraction in (0, 1]")
        return value
    if not isinstance(value, float) or value <= 0:
        raise ValueError("expected a fraction in (0, 1] or a number of batches >= 1")
    if value > 1:
        if value != int(value):
            raise ValueError("expected a fraction in (0, 1] or a whole number of batches")
        return int(value)
    return value


def _devices(value: Any) -> Any:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= -1):
        return value
    if isinstance(value, list) and all(isinstance(v, int) and v >= 0 for v in value) and value:
        return value
    if isinstance(value, str) and all(part.strip().isdigit() for part in value.split(",")):
        return value
    raise ValueError('expected "auto", a count (-1: all), a list of device ids or "0,1"')


class Section(BaseModel):
    """A config section: unknown keys refused, values validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)


MIN_FILTERS = 4
"""Fewest filters a model's first convolution may have: every model scales its layers by
``kwargs.width`` and keeps at least one filter (models/blocks.py ``scaled``), so a width of 0
or 0.001 would still build, as a network of 1-filter layers that learns nothing."""


class ModelConfig(Section):
    name: str = "unetpp_mtl"
    kwargs: dict[str, Any] = Field(default_factory=dict)
    weights: str | None = None  # user-provided initial weights (state dict or checkpoint)
    output_prior: Probability | None = None  # output bias starts at logit(prior) (None: PyTorch)

    @field_validator("kwargs")
    @classmethod
    def _width(cls, kwargs: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Refuse a ``width`` that leaves the first layer under :data:`MIN_FILTERS` filters.
        Other problems of the kwargs are named when the model is built (training/run.py)."""
        width, name = kwargs.get("width"), info.data.get("name")
        if width is None or name is None:
            return kwargs
        if isinstance(width, bool) or not isinstance(width, (int, float)) or width <= 0:
            raise ValueError(f"width {width!r}: expected a number > 0")
        try:
            filters = first_filters(create_on_meta(name, **kwargs))
            full = first_filters(create_on_meta(name, **{**kwargs, "width": 1.0}))
        except (TypeError, ValueError):
            return kwargs
        if filters < MIN_FILTERS:
            raise ValueError(
                f"width {width:g} leaves {name}'s first layer {filters} filter(s) of {full}; "
                f"it needs at least {MIN_FILTERS} (width >= {MIN_FILTERS / full:g})"
            )
        return kwargs


class LossConfig(Section):
    """Eq. 2 (alpha, beta), Eq. 6 (gamma, lam, delta), Eq. 5 on or off (laplacian), Dice
    smoothing, edge band radius, and a linear warm-up of delta (not in the paper;
    docs/training.md)."""

    gamma: Annotated[Float, Field(ge=0)] = 1.0
    lam: Annotated[Float, Field(ge=0)] = 1.0
    delta: Annotated[Float, Field(ge=0)] = 10.0
    # Eq. 5, the Laplacian consistency loss, for any model; unset: the model's Table 2 row (on
    # for unetpp_mtl only). Where it is off, a delta other than 10 is refused.
    laplacian: bool | None = None
    alpha: Annotated[Float, Field(ge=0)] = 1.0
    beta: Annotated[Float, Field(ge=0)] = 1.0
    smooth: Annotated[Float, Field(ge=0)] = 1e-5
    edge_radius: Annotated[Int, Field(ge=1)] = 1  # 0 would make the edge target empty
    # share of the run's optimiser steps over which delta ramps linearly from 0 (0: the paper)
    delta_warmup: Fraction = 0.0
    # soft Dice of Eq. 4 over the whole batch (the paper, DESIGN.md) or per sample, then averaged
    dice: Literal["batch", "sample"] = "batch"
    # a control, not the paper: the mask's BCE weighs edge-band pixels 1 + this (0: Eq. 2)
    boundary_weight: Annotated[Float, Field(ge=0)] = 0.0


class DataConfig(Section):
    layout: Literal[LAYOUTS] | None = None  # None: detect
    split: Annotated[list[Any], AfterValidator(_split)] = Field(
        default_factory=lambda: [0.6, 0.2, 0.2]
    )  # counts or fractions
    stratify: bool = False  # split stratified by lesion volume (False: random, as the paper)
    window: Literal[WINDOWS] = "brain"  # CT Hounsfield window: brain (W80/L40), stroke (W40/L40)
    lesion_fraction: Probability | None = None  # share of sampled slices that hold lesion
    lesion_balance: Literal["slice", "subject"] = "slice"  # how that share is split (cache.py)
    patch_size: Annotated[Int, Field(ge=16, multiple_of=16)] | None = None  # None: whole slices
    patch_positive: Fraction = 0.5  # on lesion slices, share of patches centred on lesion
    context_slices: Annotated[Int, Field(ge=0)] = 0  # 2.5D: k slices each side as channels
    mirror: bool = False  # the left-right mirror as more channels (template-registered data)
    zero_outside_crop: bool = False  # train on what the inference crop keeps (data/crop.py)
    augment: bool = False  # MONAI spatial + intensity augmentation (data/augment.py)
    val_slice_stride: Annotated[Int, Field(ge=1)] = 1  # validate on every k-th slice
    num_workers: Annotated[Int, Field(ge=0)] = 0
    cache_dir: str | None = None  # None: RUN/cache


class OptimConfig(Section):
    lr: Annotated[Float, Field(gt=0)] = 1e-3
    batch_size: Annotated[Int, Field(ge=1)] = 8  # global: split among DDP processes
    epochs: Annotated[Int, Field(ge=1)] = 100
    weight_decay: Annotated[Float, Field(ge=0)] = 0.0  # Adam's (coupled) decay on every parameter
    l2: Annotated[Float, Field(ge=0)] = 0.0  # Keras-style L2 l2 * sum(w^2) on conv kernels
    schedule: Literal[SCHEDULES] = "constant"  # constant (the paper) or cosine (to 0)


class TrainerConfig(Section):
    accelerator: Literal[ACCELERATORS] = "auto"
    devices: Annotated[Any, AfterValidator(_devices)] = "auto"
    num_nodes: Annotated[Int, Field(ge=1)] = 1
    strategy: str = "auto"
    precision: Literal[PRECISIONS] | None = None  # None: 16-mixed on GPU, 32-true on CPU
    limit_train_batches: Annotated[Any, AfterValidator(_batch_limit)] = 1.0
    limit_val_batches: Annotated[Any, AfterValidator(_batch_limit)] = 1.0
    check_val_every_n_epoch: Annotated[Int, Field(ge=1)] = 1
    select_by: Literal[SELECT_BY] = "subject"  # best.ckpt by mean per-subject or pooled Dice


class PostprocessConfig(Section):
    """Decided on the validation subjects when training ends (not in the paper): the
    probability threshold and the minimum lesion volume (26-connected components, mm3) best by
    ``objective`` (``dice``: mean per-subject Dice; ``dice_f1``: the mean of per-subject Dice
    and lesion-wise F1), stored in ``best.ckpt``."""

    fit: bool = True
    objective: Literal["dice", "dice_f1"] = "dice"
    thresholds: Annotated[list[Probability], Field(min_length=1)] = Field(
        default_factory=lambda: [0.3, 0.4, 0.5, 0.6, 0.7]
    )
    min_lesion_mm3: Annotated[list[Annotated[Float, Field(ge=0)]], Field(min_length=1)] = Field(
        default_factory=lambda: [0.0, 10.0, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0]
    )


class Config(Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    postprocess: PostprocessConfig = Field(default_factory=PostprocessConfig)
    seed: Annotated[Int, Field(ge=0, le=2**32 - 1)] = 0

    @model_validator(mode="after")
    def _laplacian(self) -> Config:
        """Resolve an unset ``loss.laplacian`` to the model's row (so the saved config says
        it); refuse a ``loss.delta`` that Eq. 5 being off would silently ignore."""
        loss = self.loss
        if loss.laplacian is None:
            loss.laplacian = laplacian_default(self.model.name)
        if not loss.laplacian and loss.delta != LossConfig.model_fields["delta"].default:
            raise ValueError(
                f"loss.delta {loss.delta:g}: Eq. 5 (the Laplacian loss) is off for "
                f"{self.model.name}; set loss.laplacian true to train with it"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def preprocessing(self, modality: str, space: str = "unknown") -> Preprocessing:
        """The input preprocessing this config trains with, on scans of ``modality`` lying in
        ``space``."""
        d = self.data
        return Preprocessing(
            modality, d.window, d.context_slices, d.mirror, d.zero_outside_crop, space
        )

    def model_kwargs(self) -> dict[str, Any]:
        """The model's kwargs; 2.5D context and the mirror set the input channels: 2k+1
        slices of the scan, and as many of its mirror."""
        kwargs = dict(self.model.kwargs)
        k, mirror = self.data.context_slices, self.data.mirror
        channels = (2 * k + 1) * (2 if mirror else 1)
        if channels > 1:
            given = kwargs.setdefault("in_channels", channels)
            if given != channels:
                raise StrokesegError(
                    f"model.kwargs.in_channels {given}: data.context_slices {k}"
                    f"{' with data.mirror' if mirror else ''} feeds {channels}"
                )
        return kwargs


def build_config(values: dict[str, Any], where: str = "config") -> Config:
    """Validate a nested dict of config values (``where`` names its source in errors)."""
    try:
        return Config.model_validate(values)
    except ValidationError as error:
        raise one_line(error, where, Config) from None


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
    """A config file path, or the name of a shipped config (``tiny``, ``atlas/table3_unetpp``)."""
    path = Path(path)
    if path.is_file():
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
        except IsADirectoryError:
            raise StrokesegError(f"{path}: a folder, not a config file") from None
        except yaml.YAMLError as error:
            raise StrokesegError(f"{path}: not valid YAML ({error})".replace("\n", " ")) from None
        if not isinstance(values, dict):
            raise StrokesegError(f"{path}: a config must be a mapping of sections")
    values = merge(values, parse_overrides(list(overrides)))
    return build_config(values, str(path) if path else "config")


def save_config(config: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
