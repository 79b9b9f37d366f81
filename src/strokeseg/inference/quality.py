"""Quality warnings: a scan far from the checkpoint's training data, or an odd result.

A warning never stops a run; it tells the reader to look before trusting the numbers. The
training data's statistics come from the checkpoint (``TrainingData.fingerprint``,
:mod:`strokeseg.data.fingerprint`); checkpoints written before it get the checks that need
no statistics (modality, empty or implausibly large mask, low confidence). Thresholds:

- voxel size or field of view: an axis more than 25 % outside the training range;
- orientation: stored axis codes (e.g. LPS) never seen in training;
- intensity: head fraction of the volume beyond x1.5 of the training range, or the median
  normalised head intensity more than 0.1 outside it;
- modality: a CT-like scan (1st percentile below -500, i.e. air in HU) for an MRI checkpoint
  or the reverse, or a file-name contrast (T1w, FLAIR, ...) the training scans did not have;
- registration (a native scan on a template-space checkpoint): correlation with the template
  T1 in its brain under 0.65; the other data checks then look at the scan on the template grid;
- mask: empty, or more than 25 % of the head;
- volume: no more lesion than the false lesions (touching no true lesion) the checkpoint's
  post-processed masks left in a typical validation subject (the median over them,
  ``val_false_lesion_ml_median``, recorded when training fits the post-processing): a brain
  without a stroke gets such a finding;
- confidence: mean probability inside the mask below halfway between the threshold and 1.
"""

from __future__ import annotations

import numpy as np

from strokeseg.data.fingerprint import describe_range, scan_fingerprint
from strokeseg.data.preprocessing import PreparedScan, TrainingData
from strokeseg.inference.engine import Predictor, Segmentation
from strokeseg.inference.native import TemplateScan

RANGE_SLACK = 1.25
HEAD_SLACK = 1.5
INTENSITY_SLACK = 0.1
CT_AIR_HU = -500.0
LARGE_MASK_FRACTION = 0.25
LOW_REGISTRATION = 0.65
"""A registration's correlation with the template under this (yet at least
``registration.MIN_CORRELATION``, or it fails) is flagged: a T1 in register measures about
0.75-0.95, one 10 mm off about 0.5 (docs/data.md)."""


def _axes(values, low, high, slack: float) -> list[int]:
    return [i for i, v in enumerate(values) if v < low[i] / slack or v > high[i] * slack]


def _fmt(values) -> str:
    return " x ".join(f"{v:g}" for v in values)


def looks_like_ct(data: np.ndarray) -> bool:
    """Air in Hounsfield units: the 1st percentile below -500 (MRI intensities are >= 0)."""
    sample = np.asarray(data).ravel()[:: max(1, data.size // 1_000_000)]
    return bool(np.percentile(sample, 1) < CT_AIR_HU)


def data_warnings(prepared: PreparedScan, data: TrainingData) -> list[str]:
    """Warnings about the scan itself against the checkpoint's training data."""
    modality = data.preprocessing.modality
    warnings = []
    ct_like = looks_like_ct(prepared.volume.data)
    if ct_like != (modality == "ct"):
        seen = "CT (air below -500 HU)" if ct_like else "not CT in Hounsfield units"
        warnings.append(
            f"modality: the scan looks {seen}, the checkpoint was trained on {modality}"
        )
    train = data.fingerprint
    if not train:
        return warnings
    scan = scan_fingerprint(prepared)
    if scan["contrast"] and train["contrasts"] and scan["contrast"] not in train["contrasts"]:
        warnings.append(
            f"modality: file name says {scan['contrast']}, training scans were "
            + ", ".join(train["contrasts"])
        )
    for key, label in (("spacing_mm", "voxel size"), ("fov_mm", "field of view")):
        low, high = train[key]["min"], train[key]["max"]
        if _axes(scan[key], low, high, RANGE_SLACK):
            warnings.append(
                f"{label}: {_fmt(scan[key])} mm, training {describe_range(low, high, ' mm')}"
            )
    if scan["axcodes"] not in train["axcodes"]:
        warnings.append(
            f"orientation: stored as {scan['axcodes']}, training scans were "
            + ", ".join(train["axcodes"])
        )
    low, high = train["head_fraction"]["min"], train["head_fraction"]["max"]
    if _axes([scan["head_fraction"]], [low], [high], HEAD_SLACK):
        warnings.append(
            f"intensity: the head fills {scan['head_fraction']:.2f} of the volume, "
            f"training {describe_range(round(low, 2), round(high, 2))}"
        )
    low, high = train["intensity_median"]["min"], train["intensity_median"]["max"]
    median = scan["intensity_median"]
    if median < low - INTENSITY_SLACK or median > high + INTENSITY_SLACK:
        warnings.append(
            f"intensity: median normalised head intensity {median:.2f}, "
            f"training {describe_range(round(low, 2), round(high, 2))}"
        )
    return warnings


def result_warnings(
    scan: PreparedScan,
    mask: np.ndarray,
    probability: np.ndarray,
    threshold: float = 0.5,
    false_lesion_ml: float | None = None,
) -> list[str]:
    """Warnings about the segmentation: empty, implausibly large, as small as the model's own
    false lesions (``false_lesion_ml``: their median volume in a validation scan), or low
    confidence."""
    mask = np.asarray(mask, dtype=bool)
    lesion = int(np.count_nonzero(mask))
    if lesion == 0:
        return ["mask: empty (no lesion found); check the scan shows a head like the training"]
    warnings = []
    head = int(np.count_nonzero(scan.head))
    if lesion > LARGE_MASK_FRACTION * max(head, 1):
        warnings.append(f"mask: {100 * lesion / max(head, 1):.0f} % of the head, implausibly large")
    ml = lesion * scan.volume.voxel_mm3 / 1000.0
    if false_lesion_ml is not None and ml <= false_lesion_ml:
        warnings.append(
            f"volume: {ml:.2f} mL found, no more than the false lesions this model leaves in a "
            f"typical validation scan ({false_lesion_ml:.2f} mL): it may not be a stroke; "
            "check the finding on the images"
        )
    mean = float(np.asarray(probability)[mask].mean())
    floor = threshold + (1 - threshold) / 2
    if mean < floor:
        warnings.append(f"confidence: mean probability in the mask {mean:.2f} < {floor:.2f}")
    return warnings


def registration_warnings(template: TemplateScan) -> list[str]:
    """A registration to the template that passed, but with a low quality figure."""
    quality = template.registration.quality
    if quality >= LOW_REGISTRATION:
        return []
    return [
        f"registration: correlation {quality:.2f} with the template (< {LOW_REGISTRATION}); "
        "check that the mask sits on the scan's anatomy"
    ]


def scan_warnings(scan: PreparedScan, result: Segmentation, predictor: Predictor) -> list[str]:
    """Every warning for one scan segmented by ``predictor``, data first, then result. The data
    checks look at what the network saw (``result.seen``: for a scan registered to the
    template, the scan on the template grid)."""
    warnings = data_warnings(result.seen, predictor.data)
    if result.template is not None:
        warnings = registration_warnings(result.template) + warnings
    return warnings + result_warnings(
        scan,
        result.mask,
        result.probability,
        predictor.rule.threshold,
        predictor.false_lesion_ml,
    )
