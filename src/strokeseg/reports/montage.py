"""A PNG montage of a synthetic cohort: for a few subjects, the axial slice with most lesion.

Columns: the image (MRI: 0.5-99.5 percentile window; CT: brain window W80/L40), the lesion
mask's contour on it, and a zoom on the lesion with the edge band that the multi-task model
learns (the same :func:`strokeseg.models.multitask.edge_target` as training) half-transparent
over it, so the soft border can be judged. Shown in RAS orientation,
anterior up, patient's left on the left. Run as
``python -m strokeseg.reports.montage DATASET_DIR OUT.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from strokeseg.errors import StrokesegError


def _pairs(dataset_dir: Path) -> tuple[list[tuple[str, Path, Path]], bool]:
    """(name, image, mask) per subject and whether it is CT, for SynthATLAS or SynthCT folders."""
    if (dataset_dir / "dataset.json").is_file():
        images = sorted((dataset_dir / "imagesTr").glob("*_0000.nii.gz"))
        pairs = [
            (
                p.name[: -len("_0000.nii.gz")],
                p,
                dataset_dir / "labelsTr" / p.name.replace("_0000", ""),
            )
            for p in images
        ]
        return pairs, True
    images = sorted(dataset_dir.glob("sub-*/ses-*/anat/*_T1w.nii.gz"))
    masks = [p.with_name(p.name.replace("_T1w", "_label-L_desc-T1lesion_mask")) for p in images]
    return [(p.name.split("_")[0], p, m) for p, m in zip(images, masks, strict=True)], False


def montage(dataset_dir: Path | str, out_png: Path | str, n: int = 4) -> Path:
    """Write a montage of the first ``n`` subjects of a synthetic cohort to ``out_png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from strokeseg.models.multitask import edge_target

    pairs, is_ct = _pairs(Path(dataset_dir))
    if not pairs:
        raise StrokesegError(f"{dataset_dir}: no SynthATLAS or SynthCT subjects found")
    pairs = pairs[:n]
    fig, axes = plt.subplots(len(pairs), 3, figsize=(9, 3.1 * len(pairs)), squeeze=False)
    for row, (name, image_path, mask_path) in zip(axes, pairs, strict=True):
        image = nib.as_closest_canonical(nib.load(image_path))
        volume = image.get_fdata(dtype=np.float32)
        mask = np.asarray(nib.as_closest_canonical(nib.load(mask_path)).dataobj) > 0
        z = int(np.argmax(mask.sum(axis=(0, 1))))
        lo, hi = (0.0, 80.0) if is_ct else tuple(np.percentile(volume, [0.5, 99.5]))
        plane, lesion = volume[:, :, z].T, mask[:, :, z].T.astype(np.float32)
        edge = edge_target(torch.from_numpy(lesion)[None, None])[0, 0].numpy()
        voxel_ml = float(np.prod(image.header.get_zooms()[:3])) / 1000.0
        for ax in row:
            ax.imshow(plane, cmap="gray", vmin=lo, vmax=hi, origin="lower")
            ax.set_axis_off()
        row[1].contour(lesion, levels=[0.5], colors="red", linewidths=0.8, origin="lower")
        row[2].imshow(np.ma.masked_equal(edge, 0), cmap="autumn", origin="lower", alpha=0.6)
        ys, xs = np.nonzero(lesion)
        margin = max(12, int(0.6 * max(np.ptp(ys), np.ptp(xs))))
        row[2].set_xlim(xs.min() - margin, xs.max() + margin)
        row[2].set_ylim(ys.min() - margin, ys.max() + margin)
        row[0].set_title(f"{name}, slice {z}", fontsize=9)
        row[1].set_title(f"mask ({mask.sum() * voxel_ml:.1f} mL)", fontsize=9)
        row[2].set_title("edge band (zoomed)", fontsize=9)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


if __name__ == "__main__":
    montage(Path(sys.argv[1]), Path(sys.argv[2]), *(int(a) for a in sys.argv[3:4]))
