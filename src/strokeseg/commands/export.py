"""``strokeseg export``: the deployed network alone, as ONNX or TorchScript."""

from __future__ import annotations

import argparse
from pathlib import Path

from strokeseg.commands.options import add_level, add_output


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export the inference network (.onnx or .pt)",
        description="Export the main branch only (no auxiliary edge branch) and check the "
        "file against PyTorch on random input.",
    )
    p.add_argument("--checkpoint", type=Path, required=True)
    add_output(p, "FILE.onnx or FILE.pt", required=True)
    add_level(p)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from strokeseg.inference.checkpoint import load_network
    from strokeseg.inference.export import export

    network, meta = load_network(args.checkpoint, args.level)
    meta = {**meta, "data": meta["data"].to_dict(), "level": args.level}
    difference = export(network, meta, args.out, overwrite=args.overwrite)
    params = sum(p.numel() for p in network.parameters())
    print(
        f"{args.out}: {meta['model_name']} main branch, {params:,} parameters, "
        f"max |difference| vs PyTorch {difference:.1e} (relative to the largest logit)"
    )
    return 0
