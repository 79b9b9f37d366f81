"""``strokeseg train``: train a registered model from a YAML config on a dataset folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from strokeseg.commands.options import add_output, add_overrides, positive_int


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
    p.add_argument(
        "--folds",
        type=positive_int,
        metavar="K",
        help="K-fold cross-validation: subjects in K folds stratified by lesion volume "
        "(seeded by the config's seed); with --fold I, test on fold I, train on the others",
    )
    p.add_argument("--fold", type=int, metavar="I", help="the fold to test on (0..K-1)")
    p.add_argument("--overwrite", action="store_true", help="start the run folder afresh")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from strokeseg.data.folds import check_fold

    check_fold(args.folds, args.fold)
    from strokeseg.jobs.train import train
    from strokeseg.training.config import load_config

    config = load_config(args.config, args.overrides)
    fold = None if args.folds is None else (args.folds, args.fold)
    trained = train(config, args.data, args.out, overwrite=args.overwrite, fold=fold)
    rule, out = trained.postprocess, trained.run
    if rule:
        print(
            f"post-processing (validation, not in the paper): threshold {rule['threshold']:g}, "
            f"minimum lesion {rule['min_lesion_mm3']:g} mm3 (by {rule['objective']}); validation "
            f"Dice {rule['val_dice_raw']:.4f} raw -> {rule['val_dice']:.4f}, lesion F1 "
            f"{rule['val_f1_raw']:.4f} -> {rule['val_f1']:.4f}"
        )
    print(f"run folder: {out} (best.ckpt, last.ckpt, metrics.csv, curves.png)")
    return 0
