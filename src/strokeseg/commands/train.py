"""``strokeseg train``: train a registered model from a YAML config on a dataset folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from strokeseg.commands.options import add_output, add_overrides


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model (Lightning; DDP with torchrun or --set trainer.devices=N)",
        description="Train a model into a run folder (config, split, versions, best.ckpt, "
        "last.ckpt, metrics.csv, curves.png). A run folder holding last.ckpt resumes from it.",
    )
    p.add_argument("--config", type=Path, help="YAML config (configs/...); defaults otherwise")
    p.add_argument("--data", type=Path, required=True, help="dataset folder (any layout)")
    add_output(p, "run folder", required=True)
    add_overrides(p, "override a config value, e.g. --set optim.epochs=5 (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="start the run folder afresh")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from strokeseg.training.config import load_config
    from strokeseg.training.run import train

    config = load_config(args.config, args.overrides)
    out = train(config, args.data, args.out, overwrite=args.overwrite)
    print(f"run folder: {out} (best.ckpt, last.ckpt, metrics.csv, curves.png)")
    return 0
