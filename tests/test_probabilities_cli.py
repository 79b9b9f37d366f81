"""``predict --probabilities`` through the real command line with the tiny checkpoint: the map
is the input's geometry, and the mask is that map under the checkpoint's post-processing."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import torch

from strokeseg.data.components import component_sizes, label_lesions


def las_copy(source, target):
    """The scan stored with x reversed: same world coordinates, another voxel order."""
    image = nib.load(source)
    affine = image.affine.copy()
    affine[:3, 3] += affine[:3, 0] * (image.shape[0] - 1)
    affine[:3, 0] *= -1
    flipped = nib.Nifti1Image(np.asarray(image.dataobj)[::-1], affine, image.header)
    flipped.set_sform(affine, code=1)
    flipped.set_qform(affine, code=1)
    nib.save(flipped, target)
    return target


def test_mask_is_the_probability_map_under_the_post_processing(
    tiny_run, tiny_dataset, tmp_path, cli
):
    scans = tmp_path / "scans"
    scans.mkdir()
    las_copy(tiny_dataset / "images" / "case0.nii.gz", scans / "case0.nii.gz")
    checkpoint = torch.load(tiny_run / "best.ckpt", map_location="cpu", weights_only=True)
    rule = {"threshold": 0.3, "min_lesion_mm3": 20.0}  # low threshold: specks to remove
    checkpoint["strokeseg"]["postprocess"] = rule
    ckpt = tmp_path / "rule.ckpt"
    torch.save(checkpoint, ckpt)
    out = tmp_path / "out"
    result = cli("predict", "-i", scans, "-o", out, "--checkpoint", ckpt, "--probabilities")
    assert result.returncode == 0, result.stderr[-3000:]

    source = nib.load(scans / "case0.nii.gz")
    stored = nib.load(out / "case0_probabilities.nii.gz")
    assert stored.shape == source.shape and stored.get_data_dtype() == np.float32
    assert np.array_equal(stored.affine, source.affine)
    for form in ("get_sform", "get_qform"):
        assert (
            getattr(stored.header, form)(coded=True)[1]
            == getattr(source.header, form)(coded=True)[1]
        )
    probability = np.asarray(stored.dataobj)
    assert probability.min() >= 0 and probability.max() <= 1
    mask = np.asarray(nib.load(out / "case0_mask.nii.gz").dataobj).astype(bool)

    above = probability >= rule["threshold"]
    assert not (mask & ~above).any()  # mask within the thresholded map
    labels, count = label_lesions(above)
    voxel_mm3 = float(np.prod(source.header.get_zooms()[:3]))
    big = component_sizes(labels, count) * voxel_mm3 >= rule["min_lesion_mm3"]
    big[0] = False
    assert np.array_equal(mask, big[labels])  # only the small components differ


def test_probability_maps_are_refused_over_existing_files(tiny_run, tiny_dataset, tmp_path, cli):
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "case1.nii.gz").write_bytes((tiny_dataset / "images" / "case1.nii.gz").read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    (out / "case1_probabilities.nii.gz").write_text("mine")
    ckpt = tiny_run / "best.ckpt"
    result = cli("predict", "-i", scans, "-o", out, "--checkpoint", ckpt, "--probabilities")
    assert result.returncode == 1
    assert "case1_probabilities.nii.gz: already exists" in result.stderr
    assert not (out / "case1_mask.nii.gz").exists()
