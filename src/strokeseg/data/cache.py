"""A slice cache: every volume decoded once into memory-mapped arrays, then 2D training samples.

Decoding an ATLAS .nii.gz costs about a second; a training epoch reads every slice, so the
volumes are decoded once (load_subject -> the network's input of
:func:`strokeseg.data.preprocessing.prepare` -> to_slices; with ``zero_outside_crop`` the
voxels the inference crop leaves out are 0) into one folder per subject under
``cache_dir``: ``image.npy`` (float16, (Z, H, W), values in [0, 1]; (Z, 2, H, W) with the
left-right mirror as a second volume, ``data/mirror.py``), ``mask.npy`` (uint8)
and ``meta.json`` (the key, the RAS shape, lesion voxels per slice). The key hashes the source
files' paths, sizes and modification times and the settings, so a changed file or setting makes
a new entry; an entry is written to a temporary folder and renamed, so it is complete or absent.
The arrays are opened with ``np.load(mmap_mode="r")`` lazily in each DataLoader worker.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

from strokeseg.data.augment import augmentation, mirror_misalignment
from strokeseg.data.io import atomic_path
from strokeseg.data.layouts import Dataset, Subject, load_subject
from strokeseg.data.preprocessing import Preprocessing, prepare
from strokeseg.data.slices import stack_context, to_slices
from strokeseg.errors import StrokesegError

CACHE_VERSION = 1


def _stat(path: Path) -> list:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _key(subject: Subject, preprocessing: Preprocessing, multiple: int) -> str:
    """The entry's key: the source files and the preprocessing that changes the cached volumes
    (2.5D context and the space do not)."""
    content = {
        "version": CACHE_VERSION,
        "id": subject.id,
        "image": _stat(subject.image),
        "masks": [_stat(m) for m in subject.masks],
        "modality": preprocessing.modality,
        "window": preprocessing.window,
        "multiple": multiple,
        # old keys stay valid: a setting off adds nothing
        **({"zero_outside_crop": True} if preprocessing.zero_outside_crop else {}),
        **({"mirror": True} if preprocessing.mirror else {}),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _write_entry(
    subject: Subject, preprocessing: Preprocessing, multiple: int, folder: Path, key: str
) -> None:
    image, mask = load_subject(subject)
    if mask is None:
        raise StrokesegError(f"{subject.image}: subject {subject.id} has no mask to train on")
    volumes = prepare(image, preprocessing).network_input()
    if preprocessing.mirror:  # (Z, 2, H, W): the scan and its left-right mirror
        images = np.stack([to_slices(v, multiple) for v in volumes], axis=1).astype(np.float16)
    else:
        images = to_slices(volumes, multiple).astype(np.float16)
    masks = to_slices(mask, multiple)
    meta = {
        "key": key,
        "id": subject.id,
        "shape_ras": list(image.data.shape),
        "lesion_voxels": masks.reshape(len(masks), -1).sum(axis=1, dtype=np.int64).tolist(),
    }
    with atomic_path(folder, overwrite=True) as tmp:
        tmp.mkdir()
        np.save(tmp / "image.npy", images)
        np.save(tmp / "mask.npy", masks)
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


class SliceCache:
    """Cached slices of several subjects; ``index`` rows are (subject position, slice)."""

    def __init__(self, folders: list[Path]):
        self.folders = [Path(f) for f in folders]
        self.meta = [
            json.loads((f / "meta.json").read_text(encoding="utf-8")) for f in self.folders
        ]
        self.subject_ids = [m["id"] for m in self.meta]
        rows = [(i, z) for i, m in enumerate(self.meta) for z in range(len(m["lesion_voxels"]))]
        self.index = np.array(rows, dtype=np.int64).reshape(-1, 2)
        self.lesion_voxels = np.array(
            [v for m in self.meta for v in m["lesion_voxels"]], dtype=np.int64
        )
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def build(
        cls,
        dataset: Dataset,
        subject_ids: list[str],
        cache_dir: str | Path,
        preprocessing: Preprocessing | None = None,
        multiple: int = 16,
    ) -> SliceCache:
        """Decode the listed subjects that are not cached yet (valid entries are re-used);
        ``preprocessing`` by default: the dataset's modality, every other setting off."""
        by_id = {s.id: s for s in dataset.subjects}
        unknown = [i for i in subject_ids if i not in by_id]
        if unknown:
            raise StrokesegError(f"{dataset.root}: unknown subject ids {', '.join(unknown[:5])}")
        from tqdm import tqdm

        preprocessing = preprocessing or Preprocessing(dataset.modality)
        folders = []
        for sid in tqdm(subject_ids, desc="slice cache", unit="subject", disable=None):
            subject = by_id[sid]
            key = _key(subject, preprocessing, multiple)
            folder = Path(cache_dir) / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', sid)}-{key[:16]}"
            meta = folder / "meta.json"
            if not (
                meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("key") == key
            ):
                _write_entry(subject, preprocessing, multiple, folder, key)
            folders.append(folder)
        return cls(folders)

    def __len__(self) -> int:
        return len(self.index)

    def arrays(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """Memory-mapped (images, masks) of subject ``position``, opened once per process."""
        if position not in self._arrays:
            folder = self.folders[position]
            self._arrays[position] = (
                np.load(folder / "image.npy", mmap_mode="r"),
                np.load(folder / "mask.npy", mmap_mode="r"),
            )
        return self._arrays[position]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_arrays": {}}  # workers re-open the maps instead of copying


def _plain(sample: dict) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v).as_subclass(torch.Tensor) for k, v in sample.items()}


def patch_crops(size: int, positive: float = 0.5):
    """MONAI crops to ``size`` x ``size``: centred on a lesion pixel with probability
    ``positive`` (else a background pixel) when the slice has lesion (nnU-Net-style foreground
    oversampling), anywhere otherwise."""
    from monai.transforms import RandCropByPosNegLabeld, RandSpatialCropd

    keys = ["image", "mask"]
    lesion = RandCropByPosNegLabeld(
        keys,
        "mask",
        (size, size),
        pos=positive,
        neg=1 - positive,
        num_samples=1,
        allow_smaller=True,
    )
    anywhere = RandSpatialCropd(keys, (size, size), random_size=False)
    return lesion, anywhere


class SliceDataset(torch.utils.data.Dataset):
    """2D samples ``{"image", "mask"}`` (float32, (C, H, W) and (1, H, W)) from a
    :class:`SliceCache`.

    ``patch_size`` trains on random square patches instead of whole slices (a multiple of 16;
    inference still runs on whole slices): several times more optimiser steps per second.
    ``slice_stride`` keeps every k-th slice of each subject (a cheaper validation set).
    ``context_slices`` k feeds slices z-k..z+k as 2k+1 channels (2.5D; zeros past the ends),
    of each cached volume (the scan, and its mirror if cached with it). Each sample also
    carries ``subject``, its subject's position in the cache.
    """

    def __init__(
        self,
        cache: SliceCache,
        subject_ids: list[str] | None = None,
        augment: bool = False,
        lesion_fraction: float | None = None,
        patch_size: int | None = None,
        patch_positive: float = 0.5,
        slice_stride: int = 1,
        context_slices: int = 0,
        lesion_balance: str = "slice",
    ):
        if lesion_fraction is not None and not 0 < lesion_fraction < 1:
            raise StrokesegError(f"lesion_fraction {lesion_fraction}: must be in (0, 1)")
        if patch_size is not None and (patch_size < 16 or patch_size % 16):
            raise StrokesegError(f"patch_size {patch_size}: must be a multiple of 16")
        keep = np.ones(len(cache), dtype=bool)
        if subject_ids is not None:
            missing = set(subject_ids) - set(cache.subject_ids)
            if missing:
                raise StrokesegError(f"subjects not in the cache: {', '.join(sorted(missing))}")
            positions = [cache.subject_ids.index(s) for s in subject_ids]
            keep = np.isin(cache.index[:, 0], positions)
        keep &= cache.index[:, 1] % slice_stride == 0
        self.cache = cache
        self.rows = cache.index[keep]
        self.has_lesion = cache.lesion_voxels[keep] > 0
        self.lesion_fraction = lesion_fraction
        self.lesion_balance = lesion_balance
        self.transform = augmentation() if augment else None
        self.misalign = mirror_misalignment() if augment else None
        self.context_slices = context_slices
        self.crops = patch_crops(patch_size, patch_positive) if patch_size else None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        position, z = self.rows[i]
        images, masks = self.cache.arrays(int(position))
        image = stack_context(images, np.array([z]), self.context_slices)[0]
        sample = {
            "image": torch.from_numpy(image.astype(np.float32)),
            "mask": torch.from_numpy(masks[z].astype(np.float32)[None]),
        }
        if self.crops is not None:
            crop = self.crops[0] if self.has_lesion[i] else self.crops[1]
            sample = self._monai(crop, sample)
            sample = sample[0] if isinstance(sample, list) else sample
        if self.transform is not None:
            sample = self._monai(self.transform, sample)
            if images.ndim == 4:  # the second half of the channels is the mirror
                sample = self._misalign(sample)
        return {**sample, "subject": torch.tensor(int(position))}

    def _misalign(self, sample: dict) -> dict:
        """The mirror channels moved by their own small random affine (data/augment.py)."""
        image = sample["image"]
        half = image.shape[0] // 2
        moved = self._monai(self.misalign, {"mirror": image[half:]})["mirror"]
        return {**sample, "image": torch.cat([image[:half], moved])}

    @staticmethod
    def _monai(transform, sample: dict):
        """Apply a MONAI transform seeded from torch, so each worker and torch.manual_seed
        control it; MetaTensors come back as plain tensors."""
        transform.set_random_state(seed=int(torch.randint(2**31 - 1, ()).item()))
        out = transform(sample)
        return [_plain(d) for d in out] if isinstance(out, list) else _plain(out)

    def sampler(self, num_samples: int | None = None) -> WeightedRandomSampler | None:
        """Sampler drawing lesion slices with probability ``lesion_fraction`` (None: shuffle).

        ``lesion_balance`` shares that probability among the lesion slices: ``slice``, each
        lesion slice alike (a subject's share grows with its lesion's extent); ``subject``,
        each subject with lesion alike, then its lesion slices alike (as nnU-Net draws a case,
        then a foreground voxel), so a 1 mL lesion is seen as often as a 100 mL one.
        """
        if self.lesion_fraction is None:
            return None
        n_lesion = int(self.has_lesion.sum())
        n_other = len(self) - n_lesion
        if n_lesion == 0 or n_other == 0:
            weights = np.ones(len(self))
        else:
            f = self.lesion_fraction
            share = np.full(len(self), 1.0 / n_lesion)
            if self.lesion_balance == "subject":
                subjects = self.rows[:, 0]
                counts = np.bincount(subjects[self.has_lesion], minlength=subjects.max() + 1)
                share = 1.0 / (np.count_nonzero(counts) * np.maximum(counts[subjects], 1))
            weights = np.where(self.has_lesion, f * share, (1 - f) / n_other)
        return WeightedRandomSampler(weights.tolist(), num_samples or len(self), replacement=True)
