"""Training augmentation with MONAI dictionary transforms, applied to image and mask together.

Spatial transforms (left-right flip, rotation, scaling, elastic deformation) move image and mask
with the same random draw (image bilinear, mask nearest); intensity transforms (gamma,
contrast, noise, bias field) touch the image only. Probabilities follow nnU-Net's 2D defaults
loosely (each transform on a minority of samples), so most samples stay close to the data.

The left-right mirror channels (``data.mirror``) then get a small misalignment of their own
(:func:`mirror_misalignment`), so that in training a voxel's twin across the midline is
never perfectly aligned, as it is not in real, asymmetric and imperfectly registered brains.
"""

from __future__ import annotations

import numpy as np

KEYS = ["image", "mask"]


def augmentation():
    """The ``data.augment`` pipeline (MONAI ``Compose``) for 2D samples ``{"image", "mask"}``."""
    from monai.transforms import (
        Compose,
        Rand2DElasticd,
        RandAdjustContrastd,
        RandAffined,
        RandBiasFieldd,
        RandFlipd,
        RandGaussianNoised,
        RandScaleIntensityd,
    )

    return Compose(
        [
            RandFlipd(KEYS, prob=0.5, spatial_axis=1),  # W = left-right
            RandAffined(
                KEYS,
                prob=0.3,
                rotate_range=(np.pi / 12,),  # +-15 degrees
                scale_range=(0.15, 0.15),
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            ),
            Rand2DElasticd(
                KEYS,
                spacing=(24, 24),
                magnitude_range=(0.5, 1.5),
                prob=0.1,
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            ),
            RandAdjustContrastd("image", prob=0.15, gamma=(0.7, 1.5)),  # gamma
            RandScaleIntensityd("image", factors=0.15, prob=0.15),  # contrast
            RandGaussianNoised("image", prob=0.1, std=0.03),
            RandBiasFieldd("image", prob=0.1, coeff_range=(0.0, 0.2)),
        ]
    )


def mirror_misalignment():
    """A small random affine for the mirror channels alone (``{"mirror"}``): rotation within
    +-3 degrees, shifts within +-2 pixels (mm on a 1 mm grid), scaling within +-3 %."""
    from monai.transforms import RandAffined

    return RandAffined(
        "mirror",
        prob=1.0,
        rotate_range=(np.pi / 60,),
        translate_range=(2.0, 2.0),
        scale_range=(0.03, 0.03),
        mode="bilinear",
        padding_mode="border",
    )
