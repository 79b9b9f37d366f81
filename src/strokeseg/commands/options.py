"""Flags shared by several subcommands, defined once."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strokeseg.inference.options import InferenceOptions


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_overrides(parser: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE`` (repeatable): config overrides, parsed by ``load_config``."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def add_metrics_options(p: argparse.ArgumentParser) -> None:
    """``--metrics PRESET`` (how a leaderboard scores) and ``--connectivity`` (lesions)."""
    from strokeseg.evaluation.leaderboards import PRESETS

    p.add_argument(
        "--metrics",
        choices=tuple(PRESETS),
        default="strokeseg",
        help="metric preset: strokeseg (every figure, default), or as a leaderboard computes "
        "them: atlas (ATLAS R2.0: face-connected lesions, volume difference in voxels), "
        "isles22 (26-connected lesions, mL), isles26 (lesions matched one to one at IoU >= "
        "0.25 as panoptica does, mL, lesion-count difference, PR-AUC of the probability map)",
    )
    p.add_argument(
        "--connectivity",
        type=int,
        choices=(6, 26),
        default=None,
        help="lesions for lesion-wise F1 and count with --metrics strokeseg: 26 (full, "
        "default) or 6 (faces); each leaderboard preset fixes its own",
    )


def add_inference_options(p: argparse.ArgumentParser) -> None:
    """--tta, --device, --batch-size, --no-postprocess, the speed flags
    (:func:`add_speed_options`), --register and --level: shared by predict, evaluate and
    bids."""
    p.add_argument(
        "--tta",
        nargs="?",
        const="lr",
        default="none",
        choices=("none", "lr", "lr+ud"),
        help="test-time augmentation: mean probability of each slice and its left-right flip "
        "(--tta or --tta lr), or of its four left-right/up-down flips (--tta lr+ud)",
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="auto (default): CUDA with mixed precision when a GPU is available, else the CPU",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        help="slices per forward pass (default on the CPU: 128 / the first layer's filters, "
        "1 to 8: 4 at full width, 8 at quarter width; 16 on a GPU)",
    )
    p.add_argument(
        "--no-postprocess",
        dest="postprocess",
        action="store_false",
        help="plain p >= 0.5 masks, without the checkpoint's validation-tuned threshold and "
        "minimum lesion volume",
    )
    add_speed_options(p)
    p.add_argument(
        "--register",
        choices=("auto", "always", "never"),
        default="auto",
        help="affine registration to the template: auto (default) registers a scan off the "
        "MNI152 grid for a checkpoint trained on that grid, segments it there and resamples "
        "the result back; always, or never (docs/data.md)",
    )
    add_level(p)


def add_speed_options(p: argparse.ArgumentParser) -> None:
    """--crop/--no-crop, --runtime and --threads: how fast, not what, the engine segments."""
    crop = p.add_mutually_exclusive_group()
    crop.add_argument(
        "--crop",
        dest="crop",
        action="store_true",
        default=None,
        help="segment only the boxes around the head (the default for checkpoints whose answer "
        "it keeps: replicate padding, trained zeroed outside the crop)",
    )
    crop.add_argument(
        "--no-crop",
        dest="crop",
        action="store_false",
        help="segment every whole slice (the exact path; the default for other checkpoints)",
    )
    p.add_argument(
        "--runtime",
        choices=("auto", "eager", "onnx", "compile"),
        default="auto",
        help="CPU runtime: auto (default: ONNX Runtime when the export extra is installed, "
        "else PyTorch eager), eager (PyTorch NHWC), onnx, or compile (torch.compile)",
    )
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: PyTorch's)")


def inference_options(args: argparse.Namespace) -> InferenceOptions:
    """The options of :func:`add_inference_options`' flags, as one object."""
    from strokeseg.inference.options import InferenceOptions

    return InferenceOptions(
        tta=args.tta,
        device=args.device,
        batch_size=args.batch_size,
        postprocess=args.postprocess,
        crop=args.crop,
        runtime=args.runtime,
        threads=args.threads,
        level=args.level,
        register=args.register,
    )


def add_output(parser: argparse.ArgumentParser, help: str, **kwargs) -> None:
    """``-o/--out`` (``--output`` kept as an alias): the output flag of every subcommand."""
    parser.add_argument("-o", "--out", "--output", dest="out", type=Path, help=help, **kwargs)


def add_level(p: argparse.ArgumentParser) -> None:
    """``--level``: the pruned UNet++ of predict, evaluate and export."""
    p.add_argument(
        "--level",
        type=int,
        choices=(1, 2, 3, 4),
        default=4,
        help="UNet++ pruned at X(0,LEVEL) (trained with deep supervision; 4: whole UNet++)",
    )
