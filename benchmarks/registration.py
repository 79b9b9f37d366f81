"""Affine registration to the template: seconds per scan and the error against a known pose.

Each case is the template T1 (optionally with a skull and scalp around the brain) moved by a
known rigid pose into a scanner-like grid (voxel size, storage orientation), then registered
by ``strokeseg.data.registration.register_to_template``; the error is the mean distance over
the template brain between the found and the true map, and the angle between their rotations.
With ``--scan FILE`` a real scan is registered too (no known pose: time and quality only).

    python benchmarks/registration.py [--scan ../shared/data/anatomy/chris_t1.nii.gz]
"""

from __future__ import annotations

import argparse
import time

import nibabel as nib
import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

# (label, head, axcodes, voxel mm, rotation degrees xyz, shift mm)
CASES = [
    ("brain, RAS 1 mm", False, "RAS", (1.0, 1.0, 1.0), (5, -3, 8), (4, -6, 10)),
    ("brain, LPS 0.9x1.1x1.2 mm", False, "LPS", (0.9, 1.1, 1.2), (-10, 6, 12), (-12, 15, -8)),
    ("head, LAS 1.2 mm", True, "LAS", (1.2, 1.2, 1.2), (12, -8, -5), (15, 10, 18)),
    ("head, PIR 0.8 mm", True, "PIR", (0.8, 0.8, 0.8), (-6, 14, 3), (-18, -5, 6)),
]


def scan_grid(axcodes: str, spacing, fov_mm=(200.0, 240.0, 210.0)):
    """(shape, affine) of a grid stored in ``axcodes`` order centred near the brain."""
    shape = tuple(int(round(f / s)) for f, s in zip(fov_mm, spacing, strict=True))
    affine = np.diag([0.0, 0.0, 0.0, 1.0])
    for axis, (world, sign) in enumerate(nib.orientations.axcodes2ornt(axcodes)):
        affine[int(world), axis] = sign * spacing[axis]
    affine[:3, 3] = np.array([0.0, -18.0, 8.0]) - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return shape, affine


def errors(found: np.ndarray, true: np.ndarray, brain, affine) -> tuple[float, float]:
    points = nib.affines.apply_affine(affine, np.argwhere(brain)[::20])
    diff = nib.affines.apply_affine(found, points) - nib.affines.apply_affine(true, points)
    rotations = []
    for m in (found, true):
        u, _, vt = np.linalg.svd(m[:3, :3])
        rotations.append(Rotation.from_matrix(u @ vt))
    angle = np.degrees((rotations[0].inv() * rotations[1]).magnitude())
    return float(np.linalg.norm(diff, axis=1).mean()), float(angle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", help="a real T1 scan to register as well")
    args = parser.parse_args()

    from strokeseg.data.registration import register_to_template, template_grid, to_scan

    grid = template_grid()
    outside = ndimage.distance_transform_edt(~grid.brain)
    print(f"{'case':<28}{'voxels':>14}{'seconds':>9}{'quality':>9}{'mean mm':>9}{'degrees':>9}")
    for label, head, axcodes, spacing, degrees, shift in CASES:
        t1 = grid.t1.copy()
        if head:
            t1[(outside > 3) & (outside <= 8)] = 0.05
            t1[(outside > 8) & (outside <= 13)] = 0.9
        true = np.eye(4)
        true[:3, :3] = Rotation.from_euler("xyz", degrees, degrees=True).as_matrix()
        true[:3, 3] = shift
        shape, affine = scan_grid(axcodes, spacing)
        scan = to_scan(400 * t1, true, shape, affine, order=1)
        start = time.perf_counter()
        found = register_to_template(scan, affine)
        seconds = time.perf_counter() - start
        mm, angle = errors(found.matrix, true, grid.brain, grid.affine)
        size = "x".join(map(str, shape))
        print(f"{label:<28}{size:>14}{seconds:>9.1f}{found.quality:>9.3f}{mm:>9.3f}{angle:>9.3f}")
    if args.scan:
        image = nib.load(args.scan)
        start = time.perf_counter()
        found = register_to_template(image.get_fdata(dtype=np.float32), image.affine)
        seconds = time.perf_counter() - start
        size = "x".join(map(str, image.shape))
        print(f"{'real: ' + args.scan[-24:]:<28}{size:>14}{seconds:>9.1f}{found.quality:>9.3f}")


if __name__ == "__main__":
    main()
