"""Pack the real material of ``../shared/data`` that SynthATLAS needs at run time into the
package (``src/strokeseg/synth/assets/``), so a clone runs without that folder.

- ``soop_lesions.npz``: the SOOP lesion masks (1 mm MNI space), each cropped to its bounding
  box, stored in RAS order as packed bits (LZMA-compressed), with each box's first voxel in
  MNI mm. Unpacked by ``strokeseg.synth.real_lesions``.
- ``chris_t1_mni.nii.gz``: one real person's T1w with skull (NiiVue's ``chris_t1``), moved
  onto ATLAS R2.0's grid by strokeseg's affine registration to the ICBM 2009a template
  (``strokeseg.data.registration``), stored as uint8.
- ``mni152_2009_asym.nii.gz``: the asymmetric MNI152 2009 T1 template that NiiVue ships,
  resampled by world coordinates onto ATLAS R2.0's grid (197x233x189, 1 mm; the grids differ
  by whole millimetres, so this is a crop and pad) and stored as uint8.

Run from the repository root: ``python scripts/vendor_shared_data.py [../shared/data]``.
"""

from __future__ import annotations

import lzma
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from strokeseg.data.template import template_file

ASSETS = Path(__file__).resolve().parents[1] / "src" / "strokeseg" / "synth" / "assets"


def _subject(path: Path) -> int:
    return int(path.name.split("-")[1].split("_")[0])


def pack_lesions(folder: Path) -> None:
    files = sorted(folder.glob("bwsrsub-*_lesion.nii.gz"), key=lambda p: _subject(p))
    ids, origins, shapes, volumes, bits = [], [], [], [], []
    for path in files:
        image = nib.as_closest_canonical(nib.load(path))
        assert np.allclose(np.abs(np.diag(image.affine)[:3]), 1.0), path
        mask = np.asarray(image.dataobj) > 0
        where = np.nonzero(mask)
        lo = np.array([w.min() for w in where])
        hi = np.array([w.max() + 1 for w in where])
        box = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        ids.append(_subject(path))
        origins.append(np.round(image.affine[:3, :3] @ lo + image.affine[:3, 3]).astype(np.int16))
        shapes.append(box.shape)
        volumes.append(int(box.sum()))
        bits.append(np.packbits(box.ravel()))
    blob = lzma.compress(np.concatenate(bits).tobytes(), preset=9)
    np.savez(
        ASSETS / "soop_lesions.npz",
        ids=np.array(ids, np.int32),
        origin_mm=np.array(origins, np.int16),
        shape=np.array(shapes, np.int16),
        volume=np.array(volumes, np.int32),
        bits_lzma=np.frombuffer(blob, np.uint8),
    )
    print(f"{len(ids)} lesion masks, {len(blob) / 1e6:.1f} MB")


def pack_asym_template(path: Path) -> None:
    source = nib.as_closest_canonical(nib.load(path))
    grid = nib.load(template_file("t1"))
    shift = np.linalg.inv(source.affine) @ grid.affine  # grid voxel -> source voxel
    assert np.allclose(shift[:3, :3], np.eye(3)) and np.allclose(shift[:3, 3] % 1, 0)
    data = np.asarray(source.dataobj, np.float32)
    out = np.zeros(grid.shape, np.float32)
    offset = shift[:3, 3].astype(int)
    src = [
        slice(max(o, 0), min(o + n, s))
        for o, n, s in zip(offset, grid.shape, data.shape, strict=True)
    ]
    dst = [slice(s.start - o, s.stop - o) for s, o in zip(src, offset, strict=True)]
    out[tuple(dst)] = data[tuple(src)]
    out = np.round(255 * out / np.percentile(out[out > 0], 99.9)).clip(0, 255).astype(np.uint8)
    image = nib.Nifti1Image(out, grid.affine)
    image.set_qform(grid.affine, code=4)
    image.set_sform(grid.affine, code=4)
    nib.save(image, ASSETS / "mni152_2009_asym.nii.gz")
    print(f"asymmetric template on {grid.shape}")


def pack_real_head(path: Path) -> None:
    from strokeseg.data.registration import register_to_template, to_template

    source = nib.load(path)
    data = np.asarray(source.dataobj, np.float32)
    registration = register_to_template(data, source.affine)
    assert registration.ok, registration.reason
    moved = to_template(data, source.affine, registration, order=1)
    moved = np.round(255 * moved / np.percentile(moved[moved > 0], 99.9)).clip(0, 255)
    grid = nib.load(template_file("t1"))
    image = nib.Nifti1Image(moved.astype(np.uint8), grid.affine)
    image.set_qform(grid.affine, code=4)
    image.set_sform(grid.affine, code=4)
    nib.save(image, ASSETS / "chris_t1_mni.nii.gz")
    print(f"real head on {grid.shape}, registration quality {registration.quality:.2f}")


if __name__ == "__main__":
    shared = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
    pack_lesions(shared / "soop-lesions")
    pack_asym_template(shared / "anatomy" / "mni152_2009_niivue.nii.gz")
    pack_real_head(shared / "anatomy" / "chris_t1.nii.gz")
