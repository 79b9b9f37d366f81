"""Inference and training cost of the deployed multi-task model against a plain UNet++.

Prints one table, measured side by side in one run (interleaved repeats, medians):
parameters, FLOPs and latency of deploy(unetpp_mtl) vs unetpp; our UNet++ vs MONAI's
BasicUNetPlusPlus at the same widths; achieved GFLOP/s against the machine's ceiling (a
large fp32 3x3 convolution on the same threads); training step time of unetpp_mtl vs unetpp.

    python benchmarks/inference.py [--height 224 --width 192 --repeats 15 --train-batch 2]
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch
from monai.networks.nets import BasicUNetPlusPlus
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import strokeseg
from strokeseg.models.multitask import build_loss


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops()


def channels_last(model: nn.Module) -> nn.Module:
    return model.to(memory_format=torch.channels_last)


def interleaved_latency(models: dict[str, nn.Module], x: torch.Tensor, repeats: int) -> dict:
    """Median seconds per forward, models timed in turn so load drifts hit all of them.

    Models whose name ends in "NHWC" get the input in channels-last memory format.
    """
    nhwc = x.contiguous(memory_format=torch.channels_last)
    inputs = {name: nhwc if name.endswith("NHWC") else x for name in models}
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for name, model in models.items():
            model(inputs[name])  # warm-up
        for _ in range(repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model(inputs[name])
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def conv_ceiling(repeats: int) -> float:
    """GFLOP/s of a large fp32 3x3 convolution (256 -> 256 channels on 64x64), best layout."""
    conv = nn.Conv2d(256, 256, 3, padding=1, bias=False).eval()
    x = torch.randn(1, 256, 64, 64)
    layouts = {"conv NCHW": conv, "conv NHWC": channels_last(copy.deepcopy(conv))}
    seconds = min(interleaved_latency(layouts, x, repeats).values())
    return count_flops(conv, x) / seconds / 1e9


def train_step_time(name: str, batch: int, size: tuple[int, int], steps: int) -> float:
    model = strokeseg.create_model(name).train()
    loss_fn = build_loss(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, *size)
    y = (torch.rand(batch, 1, *size) > 0.9).float()
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(model(x), y)["loss"].backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])  # the first step is warm-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=224)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--train-batch", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=4)
    args = parser.parse_args()
    size = (args.height, args.width)
    x = torch.randn(1, 1, *size)

    torch.manual_seed(0)
    unetpp = strokeseg.deploy(strokeseg.create_model("unetpp"))
    monai = BasicUNetPlusPlus(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        features=(32, 64, 128, 256, 512, 32),
        act="relu",
        norm=None,
    ).eval()
    # NHWC (channels-last) is the layout `strokeseg predict` runs in.
    models = {
        "unetpp NCHW": unetpp,
        "unetpp NHWC": channels_last(copy.deepcopy(unetpp)),
        "deploy(unetpp_mtl) NHWC": channels_last(
            strokeseg.deploy(strokeseg.create_model("unetpp_mtl"))
        ),
        "MONAI BasicUNetPlusPlus NCHW": monai,
        "MONAI BasicUNetPlusPlus NHWC": channels_last(copy.deepcopy(monai)),
    }
    latency = interleaved_latency(models, x, args.repeats)
    ceiling = conv_ceiling(args.repeats)

    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, input 1x1x{size[0]}x{size[1]}, "
        f"{args.repeats} interleaved repeats (medians)"
    )
    print(f"# ceiling: fp32 3x3 conv 256->256 on 64x64 = {ceiling:.1f} GFLOP/s")
    print()
    print("| model | params | GFLOPs | latency ms | slices/s | GFLOP/s | % of ceiling |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, model in models.items():
        flops = count_flops(model, x)
        seconds = latency[name]
        print(
            f"| {name} | {count_params(model):,} | {flops / 1e9:.1f} | {seconds * 1e3:.0f} "
            f"| {1 / seconds:.2f} | {flops / seconds / 1e9:.1f} "
            f"| {100 * flops / seconds / 1e9 / ceiling:.0f}% |"
        )
    print()
    ratio = latency["deploy(unetpp_mtl) NHWC"] / latency["unetpp NHWC"]
    best_monai = min(
        latency["MONAI BasicUNetPlusPlus NCHW"], latency["MONAI BasicUNetPlusPlus NHWC"]
    )
    print(f"latency ratio deploy(unetpp_mtl) / unetpp (NHWC): {ratio:.3f}")
    print(
        f"throughput ratio unetpp NHWC / MONAI BasicUNetPlusPlus (its best layout): "
        f"{best_monai / latency['unetpp NHWC']:.2f}x"
    )

    steps = {
        name: train_step_time(name, args.train_batch, size, args.train_steps)
        for name in ("unetpp", "unetpp_mtl")
    }
    print()
    print(
        f"training step, batch {args.train_batch} at {size[0]}x{size[1]} (median of "
        f"{args.train_steps}): unetpp {steps['unetpp']:.2f} s, unetpp_mtl "
        f"{steps['unetpp_mtl']:.2f} s, ratio {steps['unetpp_mtl'] / steps['unetpp']:.2f}"
    )


if __name__ == "__main__":
    main()
