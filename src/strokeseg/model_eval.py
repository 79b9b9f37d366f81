"""A trained model on a dataset's test split: per-subject metrics, overlays, and Fig. 2.

The subjects are the test part of the run's ``split.json`` (found beside the checkpoint, or
given), or every labelled subject. Each scan goes through the same path as ``predict``: the
checkpoint's post-processing is applied (unless ``postprocess=False``) and the raw figures
(p >= 0.5, no size limit) are written beside them (``per_subject_raw.csv``, ``summary["raw"]``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from strokeseg.data.io import write_atomic
from strokeseg.data.layouts import Dataset, Subject, find_dataset, load_subject
from strokeseg.data.splits import load_split
from strokeseg.errors import StrokesegError
from strokeseg.evaluation.figures import comparison_grid, overlay_figure, save_figure
from strokeseg.evaluation.leaderboards import metric_preset
from strokeseg.evaluation.report import check_writable, evaluate, per_subject_csv, write_report
from strokeseg.inference.ensemble import load_predictor
from strokeseg.inference.options import InferenceOptions


def select_subjects(
    dataset: Dataset, checkpoint: Path, subjects: str, split_file: Path | None
) -> list[Subject]:
    labelled = [s for s in dataset.subjects if s.masks]
    if subjects == "all":
        chosen = labelled
    else:
        split_file = split_file or checkpoint.parent / "split.json"
        if not split_file.is_file():
            raise StrokesegError(
                f"{split_file}: no split file; pass --split FILE or --subjects all"
            )
        wanted = set(load_split(split_file)["test"])
        chosen = [s for s in labelled if s.id in wanted]
        missing = wanted - {s.id for s in chosen}
        if missing:
            raise StrokesegError(
                f"{dataset.root}: test subjects of {split_file} not found with a mask: "
                f"{', '.join(sorted(missing)[:5])}"
            )
    if not chosen:
        raise StrokesegError(f"{dataset.root}: no labelled subjects to evaluate")
    return chosen


def evaluate_checkpoint(
    checkpoint: Path | list[Path],
    data_dir: Path,
    out: Path,
    *,
    subjects: str = "test",
    split_file: Path | None = None,
    empty: str = "one",
    connectivity: int | None = None,
    metrics: str = "strokeseg",
    overlays: int = 4,
    compare: Path | None = None,
    overwrite: bool = False,
    options: InferenceOptions | None = None,
    on_case: Callable | None = None,
) -> dict:
    """Evaluate ``checkpoint`` (or an ensemble: several, or folders of runs) and write
    per_subject.csv, summary.json, overlays/ (and fig2.png).

    ``metrics`` names the preset (:mod:`strokeseg.evaluation.leaderboards`); the probability
    map goes to the scoring only for a preset that reports its PR-AUC.
    ``on_case(subject, image, gt, pred, modality, window)`` sees each subject (the report)."""
    from tqdm import tqdm

    check_writable(out, overwrite=overwrite)
    scoring = dict(empty=empty, connectivity=connectivity, metrics_preset=metrics)
    with_probability = "pr_auc" in dict(metric_preset(metrics, connectivity).columns).values()
    options = options or InferenceOptions()
    items = [checkpoint] if isinstance(checkpoint, (str, Path)) else list(checkpoint)
    predictor, files = load_predictor(items, options)
    if len(files) > 1 and subjects == "test" and split_file is None:
        raise StrokesegError(
            f"an ensemble of {len(files)} checkpoints has no one test split (each fold tests "
            "its own subjects); pass --split FILE or --subjects all"
        )
    meta = predictor.meta
    other = load_predictor([compare], options)[0] if compare else None
    # the test split lies in the training dataset (its layout); any other cohort is detected
    layout = predictor.data.layout if subjects == "test" and not split_file else None
    dataset = find_dataset(data_dir, layout)
    chosen = select_subjects(dataset, files[0], subjects, split_file)
    # the dataset's own modality decides
    predictor.preprocessing = replace(predictor.preprocessing, modality=dataset.modality)
    preprocessing = predictor.preprocessing
    figure_cases: list[tuple] = []
    raw_cases: list[tuple] = []

    def cases() -> Iterator[tuple]:
        for i, subject in enumerate(tqdm(chosen, desc="evaluate", unit="subject", disable=None)):
            image, gt = load_subject(subject)
            probability, raw, pred = predictor.masks(image)
            extra = (probability,) if with_probability else ()
            if on_case is not None:
                on_case(subject.id, image, gt, pred, preprocessing.modality, preprocessing.window)
            if i < overlays:
                fig = overlay_figure(
                    image.data, gt, pred, title=f"{subject.id} ({meta['model_name']})"
                )
                save_figure(fig, out / "overlays" / f"{subject.id}.png", overwrite=overwrite)
                if other is not None:
                    pred_b = other.masks(image)[2]
                    figure_cases.append((subject.id, image.data, gt, pred, pred_b))
            raw = raw.astype(bool)
            gt = gt.astype(bool)
            raw_cases.append((subject.id, raw, gt, image.voxel_mm3, image.spacing, *extra))
            yield subject.id, pred.astype(bool), gt, image.voxel_mm3, image.spacing, *extra

    rows, summary = evaluate(cases(), **scoring)
    raw_rows, raw_summary = evaluate(iter(raw_cases), **scoring)
    summary.update(
        checkpoint=str(files[0]) if len(files) == 1 else [str(f) for f in files],
        model=meta["model_name"],
        data=str(data_dir),
        postprocess=predictor.rule.to_dict(),
        tta=options.tta,
        crop=predictor.crop,  # the path taken: the crop's boxes, or whole slices
        raw=raw_summary,
    )
    write_report(rows, summary, out, overwrite=overwrite)
    write_atomic(out / "per_subject_raw.csv", per_subject_csv(raw_rows), overwrite=overwrite)
    if figure_cases:
        labels = (f"A: {meta['model_name']}", f"B: {other.meta['model_name']}")
        save_figure(
            comparison_grid(*zip(*figure_cases, strict=True), labels=labels),
            out / "fig2.png",
            overwrite=overwrite,
        )
    return summary
