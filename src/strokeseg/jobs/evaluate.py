"""``strokeseg evaluate --checkpoint``: a trained model on a dataset's test split, with
per-subject metrics, overlays, and Fig. 2.

The subjects are the test part of the run's ``split.json`` (found beside the checkpoint, or
given), or every labelled subject. Each scan goes through the same path as ``predict``: the
checkpoint's post-processing is applied (unless ``postprocess=False``) and the raw figures
(p >= 0.5, no size limit) are written beside them (``per_subject_raw.csv``, ``summary["raw"]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from strokeseg.data.io import write_atomic
from strokeseg.data.layouts import Dataset, Subject, find_dataset, load_subject
from strokeseg.data.splits import load_split
from strokeseg.errors import StrokesegError
from strokeseg.evaluation.figures import comparison_grid, overlay_figure, save_figure
from strokeseg.evaluation.report import Scores, check_writable, per_subject_csv, write_report
from strokeseg.inference.engine import Predictor
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


def subjects_to_evaluate(
    predictor: Predictor,
    files: list[Path],
    data_dir: Path,
    subjects: str,
    split_file: Path | None,
) -> list[Subject]:
    """The subjects to evaluate (:func:`select_subjects`); the dataset's own modality is the
    predictor's from now on."""
    if len(files) > 1 and subjects == "test" and split_file is None:
        raise StrokesegError(
            f"an ensemble of {len(files)} checkpoints has no one test split (each fold tests "
            "its own subjects); pass --split FILE or --subjects all"
        )
    # the test split lies in the training dataset (its layout); any other cohort is detected
    layout = predictor.data.layout if subjects == "test" and not split_file else None
    dataset = find_dataset(data_dir, layout)
    chosen = select_subjects(dataset, files[0], subjects, split_file)
    # the dataset's own modality decides
    predictor.preprocessing = replace(predictor.preprocessing, modality=dataset.modality)
    return chosen


def score_subjects(
    predictor: Predictor,
    chosen: list[Subject],
    out: Path,
    scores: tuple[Scores, Scores],
    *,
    overlays: int = 4,
    other: Predictor | None = None,
    overwrite: bool = False,
    on_case: Callable | None = None,
) -> list[tuple]:
    """Segment and score each subject in turn (post-processed into ``scores[0]``, raw into
    ``scores[1]``), writing the first ``overlays`` overlay figures as it goes: only numbers
    stay in memory, and the (image, truth, both predictions) of the overlay subjects when
    ``other`` is compared (returned for Fig. 2). The probability map is scored only for a
    metric preset that reports its PR-AUC."""
    from tqdm import tqdm

    figure_cases = []
    title = predictor.meta["model_name"]
    with_probability = "pr_auc" in dict(scores[0].preset.columns).values()
    for i, subject in enumerate(tqdm(chosen, desc="evaluate", unit="subject", disable=None)):
        image, gt = load_subject(subject)
        probability, raw, pred = predictor.masks(image)
        probability = probability if with_probability else None
        if on_case is not None:
            preprocessing = predictor.preprocessing
            on_case(subject.id, image, gt, pred, preprocessing.modality, preprocessing.window)
        if i < overlays:
            fig = overlay_figure(image.data, gt, pred, title=f"{subject.id} ({title})")
            save_figure(fig, out / "overlays" / f"{subject.id}.png", overwrite=overwrite)
            if other is not None:
                figure_cases.append((subject.id, image.data, gt, pred, other.masks(image)[2]))
        gt = gt.astype(bool)
        for score, mask in zip(scores, (pred, raw), strict=True):
            mask = mask.astype(bool)
            score.add(subject.id, mask, gt, image.voxel_mm3, image.spacing, probability)
    return figure_cases


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
    per_subject.csv, per_subject_raw.csv, summary.json, overlays/ (and fig2.png).

    Subjects are streamed (:func:`score_subjects`): memory does not grow with their number.
    ``metrics`` names the preset (:mod:`strokeseg.evaluation.leaderboards`).
    ``on_case(subject, image, gt, pred, modality, window)`` sees each subject (the report)."""
    check_writable(out, overwrite=overwrite)
    options = options or InferenceOptions()
    items = [checkpoint] if isinstance(checkpoint, (str, Path)) else list(checkpoint)
    predictor, files = load_predictor(items, options)
    chosen = subjects_to_evaluate(predictor, files, data_dir, subjects, split_file)
    other = load_predictor([compare], options)[0] if compare else None
    meta = predictor.meta
    scores = (Scores(empty, 2, connectivity, metrics), Scores(empty, 2, connectivity, metrics))
    kwargs = dict(overlays=overlays, other=other, overwrite=overwrite, on_case=on_case)
    figure_cases = score_subjects(predictor, chosen, out, scores, **kwargs)
    summary = scores[0].summary()
    summary.update(
        checkpoint=str(files[0]) if len(files) == 1 else [str(f) for f in files],
        model=meta["model_name"],
        data=str(data_dir),
        postprocess=predictor.rule.to_dict(),
        tta=options.tta,
        crop=predictor.crop,  # the path taken: the crop's boxes, or whole slices
        raw=scores[1].summary(),
    )
    write_report(scores[0].rows, summary, out, overwrite=overwrite)
    write_atomic(out / "per_subject_raw.csv", per_subject_csv(scores[1].rows), overwrite=overwrite)
    if figure_cases:
        labels = (f"A: {meta['model_name']}", f"B: {other.meta['model_name']}")
        fig2 = comparison_grid(*zip(*figure_cases, strict=True), labels=labels)
        save_figure(fig2, out / "fig2.png", overwrite=overwrite)
    return summary
