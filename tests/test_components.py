"""Lesion components: size filters and the largest piece, on hand-made masks."""

from __future__ import annotations

import numpy as np

from strokeseg.data.components import keep_large, largest
from strokeseg.synth.atlas import MIN_COMPONENT


def speckled() -> np.ndarray:
    mask = np.zeros((20, 20, 20), bool)
    mask[1, 1, 1:10] = True  # 9 voxels: a speck
    mask[5, 5, 1:6] = True  # 5 voxels ...
    mask[6, 6, 6:11] = True  # ... and 5 more touching them only at a corner: one lesion of 10
    mask[12:15, 12:15, 12:15] = True  # 27 voxels
    return mask


def test_keep_large_drops_the_9_voxel_speck_and_keeps_10_joined_at_a_corner():
    mask = speckled()
    expected = mask.copy()
    expected[1, 1] = False
    np.testing.assert_array_equal(keep_large(mask, MIN_COMPONENT), expected)


def test_keep_large_with_face_connectivity_splits_the_corner_pair():
    expected = np.zeros_like(speckled())
    expected[12:15, 12:15, 12:15] = True  # 5 + 5 are two pieces of 5 when corners do not join
    np.testing.assert_array_equal(keep_large(speckled(), 10, connectivity=6), expected)


def test_keep_large_weighs_voxels_by_their_volume():
    mask = speckled()
    # 0.5 mm3 voxels: 9 -> 4.5, 10 -> 5, 27 -> 13.5 mm3; at least 5 mm3 keeps the same as >= 10
    np.testing.assert_array_equal(keep_large(mask, 5.0, 0.5), keep_large(mask, 10))
    only_big = keep_large(mask, 6.0, 0.5)
    assert only_big.sum() == 27


def test_largest_is_the_27_voxel_cube_and_empty_stays_empty():
    cube = np.zeros((20, 20, 20), bool)
    cube[12:15, 12:15, 12:15] = True
    np.testing.assert_array_equal(largest(speckled()), cube)
    single = np.zeros((4, 4, 4), bool)
    single[1, 1, 1] = True
    np.testing.assert_array_equal(largest(single), single)
    assert not largest(np.zeros((4, 4, 4), bool)).any()
