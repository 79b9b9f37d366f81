"""What one seed of each of the paper's tables costs, per row, at both benchmark profiles.

``cpu`` profile (configs/demo.yaml on every row): the training step (a batch of the
profile's single-channel patches, the row's own loss) and the deployed network's latency on one
whole slice are *measured* here; a row's wall time is then estimated for a 20-subject synthetic
cohort (12/4/4 subjects): the profile's steps and validations of 4 subjects + evaluation of
every slice of 4 test subjects.

``paper`` profile (full width, batch 8 of whole slices, 100 epochs, the paper's cohorts): the
training FLOPs per slice are *counted* (PyTorch's FlopCounterMode on meta tensors: exact for
the convolutions and matrix products, nothing run); the GPU time assumes a sustained
throughput given by ``--gpu-tflops`` (an assumption, not a measurement: no GPU here).

    python benchmarks/table_cost.py [--tables 1 3] [--repeats 3] [--gpu-tflops 30]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from strokeseg.jobs.benchmark_rows import modalities, profile_overrides, row_configs
from strokeseg.models import create_model, deploy
from strokeseg.models.multitask import build_loss
from strokeseg.training.config import load_config

# dataset: (slice size, slices per subject, training subjects in the paper)
DATASETS = {
    "atlas": ((224, 192), 189, 120),  # ATLAS R1.2 crop, 189 axial slices, 120 training subjects
    "ct": ((512, 512), 28, 40),  # the paper's CT: 512x512 x 24-32 slices, 40 training subjects
}
COHORT = {"train": 12, "val": 4, "test": 4}  # a 20-subject synthetic cohort at 60/20/20


def median_seconds(work, repeats: int) -> float:
    work()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step(model, criterion, optimizer, x, y):
    def step():
        optimizer.zero_grad()
        criterion(model(x), y)["loss"].backward()
        optimizer.step()

    return step


def cpu_profile_row(model_name: str, config_file, size, slices: int, repeats: int) -> dict:
    config = load_config(config_file, profile_overrides("cpu", model_name))
    torch.manual_seed(0)
    model = create_model(model_name, **config.model.kwargs).train()
    criterion = build_loss(model_name, **config.loss.model_dump(exclude={"delta_warmup"}))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr)
    patch = config.data.patch_size
    x = torch.randn(config.optim.batch_size, 1, patch, patch)
    y = (torch.rand_like(x) > 0.9).float()
    step_s = median_seconds(train_step(model, criterion, optimizer, x, y), repeats)
    network = deploy(model).eval()
    with torch.inference_mode():
        slice_s = median_seconds(lambda: network(torch.randn(1, 1, *size)), repeats)
    t = config.trainer
    steps = config.optim.epochs * int(t.limit_train_batches)
    validations = config.optim.epochs // t.check_val_every_n_epoch
    val_slices = validations * COHORT["val"] * slices / config.data.val_slice_stride
    test_slices = COHORT["test"] * slices
    return {
        "step_s": step_s,
        "slice_ms": 1e3 * slice_s,
        "run_min": (steps * step_s + (val_slices + test_slices) * slice_s) / 60,
    }


def paper_flops_per_slice(model_name: str, config_file, size) -> float:
    """Training FLOPs (forward + backward) per slice at full size, counted on meta tensors."""
    config = load_config(config_file)
    with torch.device("meta"):
        model = create_model(model_name, **config.model.kwargs).train()
        x = torch.zeros(2, 1, *size)  # 2: BatchNorm needs more than one value per channel
        y = torch.zeros(2, 1, *size)
    criterion = build_loss(model_name, **config.loss.model_dump(exclude={"delta_warmup"}))
    with FlopCounterMode(display=False) as counter:
        criterion(model(x), y)["loss"].backward()
    return counter.get_total_flops() / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpu-tflops", type=float, default=30.0)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    for table in args.tables:
        modality = modalities(table)[0]  # CT first, as the paper's Tables 1-2
        dataset = "ct" if modality == "ct" else "atlas"
        size, slices, train_subjects = DATASETS[dataset]
        print(f"\nTable {table} ({dataset}, slices {size[0]}x{size[1]}, one seed)\n")
        print(
            "| model | cpu: s/step | cpu: ms/slice | cpu: run (min) "
            "| paper: TFLOP/slice (train) | paper: GPU h at "
            f"{args.gpu_tflops:g} TFLOP/s |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        total_cpu, total_gpu = 0.0, 0.0
        for model_name, config_file in row_configs(table, modality):
            cpu = cpu_profile_row(model_name, config_file, size, slices, args.repeats)
            flops = paper_flops_per_slice(model_name, config_file, size)
            epochs = load_config(config_file).optim.epochs
            gpu_h = epochs * train_subjects * slices * flops / (args.gpu_tflops * 1e12) / 3600
            total_cpu, total_gpu = total_cpu + cpu["run_min"], total_gpu + gpu_h
            print(
                f"| {model_name} | {cpu['step_s']:.2f} | {cpu['slice_ms']:.0f} "
                f"| {cpu['run_min']:.1f} | {flops / 1e12:.3f} | {gpu_h:.1f} |",
                flush=True,
            )
        print(f"| **all rows** | | | {total_cpu:.0f} | | {total_gpu:.1f} |")


if __name__ == "__main__":
    main()
