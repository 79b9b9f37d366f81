"""The whole ``predict`` job, stage by stage: a scan in; its mask, probability map and report out.

The scans: an ATLAS-sized SynthATLAS scan on the template grid (``strokeseg synth atlas
--subjects 1 --seed 7``), the same subject in a native scanner pose (``--space native``, ATLAS
R3.0 layout) and, when present, a real head (``../shared/data/anatomy/chris_t1.nii.gz``). The
checkpoints: the demo width (``--demo-checkpoint``, a trained quarter-width template-space
checkpoint; else an untrained one) and full width (untrained: the demo's config at width 1.0
with the demo checkpoint's data description, as training writes it; the network's cost does
not depend on its weights).

Each case runs ``strokeseg predict -i SCAN -o OUT --checkpoint CKPT --probabilities --report``
twice, each time in a new process:

- staged: through the CLI's own code (``strokeseg.cli.main``) with each function it calls for
  a stage wrapped in a timer (:data:`STAGES`): the stage's wall seconds, its CPU seconds (all
  threads; on a shared machine the steadier figure) and the peak resident memory during it
  (Linux's high-water mark, reset at the start of each stage); "other" is what the run spent
  outside the stages (progress bar, lesions.csv, summary, imports inside the command);
- total: the command as a user runs it (``python -m strokeseg.cli``, imports included): wall
  seconds, CPU seconds (user + system, all threads) and the process's peak resident memory.

    PYTHONPATH=src python benchmarks/end_to_end.py [--demo-checkpoint CKPT] [--no-real]
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from strokeseg.data.preprocessing import TrainingData

DEMO_CHECKPOINT = Path("/work/exp/loo_on_s1/run/best.ckpt")
REAL_SCAN = Path(__file__).resolve().parents[2] / "shared" / "data" / "anatomy" / "chris_t1.nii.gz"
# (module, attribute, stage): every call of the attribute counts to the stage; an indented
# stage runs inside the one above it (its memory is the outer stage's)
STAGES = [
    ("strokeseg.inference.ensemble", "load_predictor", "load checkpoint"),
    ("strokeseg.inference.predict", "load_volume", "read"),
    ("strokeseg.inference.engine", "register_scan", "register"),
    ("strokeseg.inference.native", "to_template", "  of which: scan to template grid"),
    ("strokeseg.inference.engine", "Predictor.probabilities", "segment (network)"),
    ("strokeseg.inference.runtime", "_OnnxRun._build", "  of which: ONNX export"),
    ("strokeseg.inference.engine", "back_to_scan", "resample back"),
    ("strokeseg.inference.engine", "apply", "post-process"),
    ("strokeseg.inference.predict", "lesion_stats", "lesion counts, quality checks"),
    ("strokeseg.inference.predict", "scan_warnings", "lesion counts, quality checks"),
    ("strokeseg.inference.predict", "save_like", "write mask"),
    ("strokeseg.inference.predict", "save_probabilities_like", "write probability map"),
    ("strokeseg.reports.scan", "RunReport.record", "write report"),
    ("strokeseg.reports.scan", "RunReport.finish", "write report"),
]
ROWS = list(dict.fromkeys(stage for _, _, stage in STAGES)) + ["other", "in-process total"]


def reset_peak() -> bool:
    """Restart this process's resident-memory high-water mark (Linux); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_mib() -> float:
    """The high-water mark since :func:`reset_peak` (else the process's peak so far)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Recorder:
    """Wall seconds and peak memory per stage of the functions :meth:`install` wraps."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.peak: dict[str, float] = defaultdict(float)
        self.depth = 0

    def wrap(self, stage: str, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            top = self.depth == 0
            if top:
                reset_peak()
            self.depth += 1
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.depth -= 1
                self.seconds[stage] += time.perf_counter() - start
                self.cpu[stage] += time.process_time() - cpu
                if top:
                    self.peak[stage] = max(self.peak[stage], peak_mib())

        return timed

    def install(self) -> None:
        for module, attribute, stage in STAGES:
            owner = importlib.import_module(module)
            *path, name = attribute.split(".")
            for part in path:
                owner = getattr(owner, part)
            setattr(owner, name, self.wrap(stage, getattr(owner, name)))


def staged(spec: dict) -> dict:
    """One staged run (in a fresh process): seconds and peak MiB per stage."""
    from strokeseg.cli import main

    recorder = Recorder()
    recorder.install()
    start, cpu = time.perf_counter(), time.process_time()
    code = main(spec["argv"])
    if code:
        raise SystemExit(f"predict exited {code}")
    result = {"peak_mib": dict(recorder.peak)}
    for key, times, total in (
        ("seconds", recorder.seconds, time.perf_counter() - start),
        ("cpu", recorder.cpu, time.process_time() - cpu),
    ):
        top = sum(s for stage, s in times.items() if not stage.startswith(" "))
        result[key] = {**times, "other": total - top, "in-process total": total}
    return result


def whole_command(argv: list[str], log: Path) -> dict:
    """``argv`` (a predict command line) in a new process: wall seconds, peak MiB, its output."""
    start = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "strokeseg.cli", *argv], stdout=out, stderr=out
        )
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    if child.returncode:
        raise SystemExit(f"{' '.join(argv)} exited {child.returncode}:\n{text[-2000:]}")
    notes = [line.split("strokeseg: note: ")[-1] for line in text.replace("\r", "\n").splitlines()]
    said = [line for line in notes if "mL in" in line or "registered" in line]
    cpu = usage.ru_utime + usage.ru_stime
    return {"seconds": seconds, "cpu": cpu, "peak_mib": usage.ru_maxrss / 1024, "said": said}


def synth_scans(folder: Path, real: bool) -> dict[str, Path]:
    """The template-space and native SynthATLAS scans of one subject (and the real head)."""
    scans = {}
    for space in ("template", "native"):
        out = folder / space
        argv = ["synth", "atlas", "--out", out, "--subjects", "1", "--seed", "7", "--space", space]
        subprocess.run([sys.executable, "-m", "strokeseg.cli", *map(str, argv)], check=True)
        scans[space] = next(out.rglob("*_T1w.nii.gz"))
    if real and REAL_SCAN.exists():
        scans["real head"] = REAL_SCAN
    return scans


def data_description(demo: Path | None) -> tuple[TrainingData, dict | None]:
    """(data description, post-processing rule) of the demo checkpoint, or the demo config's."""
    from dataclasses import replace

    from strokeseg.data.preprocessing import TrainingData
    from strokeseg.training.config import load_config

    if demo is not None:
        meta = torch.load(demo, map_location="cpu", weights_only=True)["strokeseg"]
        data = TrainingData.from_meta(meta)
        template = replace(data.preprocessing, space="template")
        return replace(data, preprocessing=template, slice_grid=None), meta.get("postprocess")
    preprocessing = load_config("demo").preprocessing("mri", "template")
    return TrainingData(preprocessing, "atlas_r2.0"), None


def untrained_checkpoint(width: float, demo: Path | None, path: Path) -> Path:
    """The demo config's network at ``width``, untrained (its output layer at the config's
    prior), described as training describes it, with the demo checkpoint's data and rule."""
    from strokeseg.training.config import load_config
    from strokeseg.training.module import SegmentationModule

    torch.manual_seed(0)
    data, rule = data_description(demo)
    module = SegmentationModule(load_config("demo", [f"model.kwargs.width={width}"]), data)
    checkpoint = {"state_dict": {f"model.{k}": v for k, v in module.model.state_dict().items()}}
    module.on_save_checkpoint(checkpoint)
    if rule:
        checkpoint["strokeseg"]["postprocess"] = rule
    torch.save(checkpoint, path)
    return path


def cases(scans: dict[str, Path], demo: Path, full: Path) -> list[dict]:
    """(scan, width, runtime) cases: the demo width on auto and eager, full width on auto."""
    widths = [("0.25", demo, "auto"), ("0.25", demo, "eager"), ("1.0", full, "auto")]
    return [
        {"scan": name, "width": w, "runtime": runtime, "path": str(path), "checkpoint": str(c)}
        for name, path in scans.items()
        for w, c, runtime in widths
    ]


def run_case(case: dict, folder: Path) -> dict:
    """The staged run and the whole command of one case, each in a new process."""
    label = f"{case['scan']}-{case['width']}-{case['runtime']}".replace(" ", "_")
    results = {}
    for kind in ("total", "staged"):
        argv = ["predict", "-i", case["path"], "-o", str(folder / f"{label}-{kind}")]
        argv += ["--checkpoint", case["checkpoint"], "--probabilities", "--report"]
        argv += ["--runtime", "eager"] if case["runtime"] == "eager" else []
        if kind == "total":
            results[kind] = whole_command(argv, folder / f"{label}.log")
            continue
        done = subprocess.run(
            [sys.executable, __file__, "--one", json.dumps({"argv": argv})],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise SystemExit(f"staged {label} failed:\n{done.stderr[-2000:]}")
        results[kind] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def scan_table(name: str, columns: list[tuple[dict, dict]]) -> None:
    """One scan's markdown table: a row per stage, seconds and peak MiB per case."""
    heads = [f"{c['width']} {c['runtime']}" for c, _ in columns]
    print(f"\n{name}\n\n| stage | " + " | ".join(f"{h}: s | CPU s | MiB" for h in heads) + " |")
    print("|---|" + "---:|---:|---:|" * len(columns))
    for row in ROWS:
        cells = []
        for _, r in columns:
            figures = [r["staged"][key].get(row) for key in ("seconds", "cpu", "peak_mib")]
            cells += [
                "" if v is None else f"{v:.{d}f}" for v, d in zip(figures, (1, 1, 0), strict=True)
            ]
        print(f"| {row} | " + " | ".join(cells) + " |")
    cells = [
        "**{seconds:.1f}** | {cpu:.1f} | {peak_mib:.0f}".format(**r["total"]) for _, r in columns
    ]
    print("| **whole command (new process)** | " + " | ".join(cells) + " |")
    for case, r in columns:
        print(f"- {case['width']} {case['runtime']}: " + "; ".join(r["total"]["said"]))


def machine_line(when: str) -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next(
        (line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line),
        platform.processor(),
    )
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"# {when}: {model}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), load average {load} (1, 5, 15 min)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-checkpoint", type=Path, default=DEMO_CHECKPOINT)
    parser.add_argument("--no-real", action="store_true", help="leave out the real head")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(staged(json.loads(args.one))))
        return
    print(machine_line("start"))
    demo = args.demo_checkpoint if args.demo_checkpoint.is_file() else None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scans = synth_scans(folder, real=not args.no_real)
        full = untrained_checkpoint(1.0, demo, folder / "full.ckpt")
        demo_path = demo or untrained_checkpoint(0.25, demo, folder / "demo.ckpt")
        print(f"# demo width: {demo_path}{'' if demo else ' (untrained)'}; full width: untrained")
        results = [(c, run_case(c, folder)) for c in cases(scans, demo_path, full)]
    for name in scans:
        scan_table(name, [(c, r) for c, r in results if c["scan"] == name])
    print("\n" + machine_line("end"))


if __name__ == "__main__":
    main()
