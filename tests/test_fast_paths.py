"""The fast paths against the exact one: crop, runtimes and the grid rule, on real volumes."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from data_files import write_nifti
from scipy import ndimage as ndi

import strokeseg
from strokeseg.data import crop, find_dataset, to_slices
from strokeseg.data.cache import SliceCache
from strokeseg.data.intensity import normalize
from strokeseg.data.io import Volume, load_volume
from strokeseg.data.preprocessing import Preprocessing, TrainingData, prepare
from strokeseg.inference import runtime as runtime_module
from strokeseg.inference.runtime import make_runtime
from strokeseg.inference.slicing import scan_probabilities

SHAPE = (150, 170, 10)


def head_volume(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A T1-like head (bright ellipsoid in noise) with dark lesion blobs, some at its edge."""
    rng = np.random.default_rng(seed)
    grid = np.indices(SHAPE).astype(np.float32)
    centre = np.array([70, 90, 5], dtype=np.float32)[:, None, None, None]
    radii = np.array([34, 42, 9], dtype=np.float32)[:, None, None, None]
    head = (((grid - centre) / radii) ** 2).sum(axis=0) <= 1
    lesion = np.zeros(SHAPE, dtype=bool)
    for _ in range(4):
        c = np.array(np.nonzero(head))[:, rng.integers(head.sum())]
        r = rng.uniform(3, 7)
        lesion |= ((grid - c[:, None, None, None]) ** 2).sum(axis=0) <= r * r
    lesion &= head
    image = np.where(head, 500.0, 0.0) - 300.0 * lesion + rng.normal(0, 10, SHAPE)
    return np.abs(image).astype(np.float32), lesion


@functools.lru_cache(maxsize=2)
def tiny_trained(padding: str = "zeros") -> torch.nn.Module:
    """A width-0.125 UNet++ trained for 60 steps on 64x64 patches of two head volumes."""
    torch.manual_seed(0)
    model = strokeseg.create_model("unetpp", width=0.125, norm="batch", padding=padding)
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    data = [head_volume(s) for s in (1, 2)]
    data = [(normalize(i, "mri"), m) for i, m in data]
    for _ in range(60):
        xs, ys = [], []
        for _ in range(8):
            image, mask = data[rng.integers(2)]
            z, y, x = rng.integers(SHAPE[2]), rng.integers(20, 96), rng.integers(20, 76)
            xs.append(image[x : x + 64, y : y + 64, z].T)
            ys.append(mask[x : x + 64, y : y + 64, z].T)
        x, y = torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys)[:, None])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y.float())
        optim.zero_grad()
        loss.backward()
        optim.step()
    return strokeseg.deploy(model)


def saved_scan(tmp_path, seed: int = 3) -> tuple[Volume, np.ndarray]:
    image, lesion = head_volume(seed)
    return load_volume(write_nifti(tmp_path / "scan.nii.gz", image)), lesion


def probs(network, volume, *, crop_on: bool, runtime: str = "eager") -> np.ndarray:
    run = make_runtime(network, runtime, threads=1)
    return scan_probabilities([run], [network], prepare(volume, Preprocessing()), crop=crop_on)


def border_distance(plan: crop.SlicePlan) -> np.ndarray:
    """Per voxel: in-plane distance (voxels, chessboard) to the outside of its slice's box."""
    inside = np.zeros(plan.shape, dtype=bool)
    for z, y0, y1, x0, x1 in plan.boxes:
        inside[max(x0, 0) : max(x1, 0), max(y0, 0) : max(y1, 0), z] = True
    out = np.zeros(plan.shape, dtype=np.float64)
    for z in range(plan.shape[2]):
        padded = np.pad(inside[:, :, z], 1)  # the volume's edge is not a box border
        for axis, n in ((0, plan.shape[0]), (1, plan.shape[1])):
            edge = [slice(None), slice(None)]
            for end in (0, n + 1):
                edge[axis] = end
                padded[tuple(edge)] = True
        d = ndi.distance_transform_cdt(padded, metric="chessboard")[1:-1, 1:-1]
        out[:, :, z] = np.where(inside[:, :, z], d, 0)
    return out


BORDER_BOUND = 24  # voxels; stated in docs/data.md
PROBABILITY_BOUND = 0.01  # beyond the band; measured 0.0012 (docs/data.md, "Border bound")


def test_crop_mask_equals_exact_mask_except_near_the_crop_border(tmp_path):
    network = tiny_trained()
    volume, lesion = saved_scan(tmp_path)
    p_exact = probs(network, volume, crop_on=False)
    p_crop = probs(network, volume, crop_on=True)
    exact, cropped = p_exact >= 0.5, p_crop >= 0.5
    assert exact.sum() > 0.3 * lesion.sum()  # the tiny model does find lesions
    plan = prepare(volume, Preprocessing()).plan
    assert plan.work < 0.6 * crop.whole_plan(volume.data.shape).work  # it does crop
    distance = border_distance(plan)
    far = distance > BORDER_BOUND
    # Beyond the band the probabilities agree to PROBABILITY_BOUND, so the masks differ there
    # only at voxels that close to the threshold (a 0.001 change flips a voxel at p = 0.5005;
    # which ones depends on the CPU's floating point, so equality is not asserted).
    assert np.abs(p_exact - p_crop)[far].max() <= PROBABILITY_BOUND
    flipped = (exact != cropped) & far
    assert (np.abs(p_exact[flipped] - 0.5) <= PROBABILITY_BOUND).all()
    assert flipped.sum() <= 1e-3 * far.sum()
    assert not exact[distance == 0].any()  # nothing the exact path finds lies outside the crop
    # Not asserted: agreement inside the border band. The box edge zero-pads what the exact
    # path sees as tissue, and UNet++'s receptive field carries that far in: on this tiny model
    # the two masks have Dice 0.67 (next test).


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_replicate_padding_makes_the_crop_mask_the_exact_mask(tmp_path):
    """The same training with replicate padding: the box edge is no longer an edge the deep
    layers see, and the cropped mask is the exact one but for a few voxels (measured: Dice
    0.9998 against 0.667 with zero padding; docs/data.md, "Border bound")."""
    volume, lesion = saved_scan(tmp_path)
    agreement = {}
    for padding in ("zeros", "replicate"):
        network = tiny_trained(padding)
        exact = probs(network, volume, crop_on=False) >= 0.5
        cropped = probs(network, volume, crop_on=True) >= 0.5
        assert dice(exact, lesion) > 0.3  # both find the lesions
        agreement[padding] = dice(exact, cropped)
    assert agreement["replicate"] >= 0.99
    assert agreement["zeros"] < 0.9  # what replicate padding fixes


@pytest.mark.parametrize(
    "runtime", ["onnx", "auto", pytest.param("compile", marks=pytest.mark.slow)]
)
def test_every_runtime_gives_the_same_mask(tmp_path, runtime):
    network = tiny_trained()
    volume, _ = saved_scan(tmp_path)
    eager = probs(network, volume, crop_on=True)
    other = probs(network, volume, crop_on=True, runtime=runtime)
    np.testing.assert_allclose(other, eager, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(other >= 0.5, eager >= 0.5)
    assert (eager >= 0.5).any()


def test_auto_runtime_runs_eagerly_when_onnx_fails(tmp_path, monkeypatch, capsys):
    def broken_export(*args, **kwargs):
        raise RuntimeError("exporter crashed\nsecond line")

    monkeypatch.setattr("strokeseg.inference.export.write_onnx", broken_export)
    network = tiny_trained()
    volume, _ = saved_scan(tmp_path)
    auto = probs(network, volume, crop_on=True, runtime="auto")
    np.testing.assert_array_equal(auto, probs(network, volume, crop_on=True))
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "strokeseg: note: --runtime auto: ONNX Runtime not used (exporter crashed); "
        "running PyTorch eager"
    ]


def test_auto_runtime_is_eager_without_the_export_extra(monkeypatch):
    monkeypatch.setattr(runtime_module, "onnx_available", lambda: False)
    network = tiny_trained()
    assert make_runtime(network, "auto").__qualname__ == make_runtime(network).__qualname__


def test_blank_scan_gives_an_empty_mask_without_running_the_network(tmp_path):
    volume = load_volume(write_nifti(tmp_path / "blank.nii.gz", np.zeros(SHAPE, np.float32)))
    calls = []
    scan = prepare(volume, Preprocessing())
    p = scan_probabilities([lambda x: calls.append(x) or x], [None], scan)
    assert p.shape == SHAPE and not p.any() and not calls


def test_cache_zero_outside_crop_keeps_only_what_the_crop_keeps(tmp_path):
    image, lesion = head_volume(4)
    anat = tmp_path / "data" / "sub-1" / "ses-1" / "anat"
    stem = "sub-1_ses-1_space-MNI152NLin2009aSym"
    write_nifti(anat / f"{stem}_T1w.nii.gz", image)
    write_nifti(anat / f"{stem}_label-L_desc-T1lesion_mask.nii.gz", lesion.astype(np.uint8))
    dataset = find_dataset(tmp_path / "data")
    plain = SliceCache.build(dataset, ["sub-1"], tmp_path / "cache")
    zeroed = SliceCache.build(
        dataset, ["sub-1"], tmp_path / "cache", Preprocessing("mri", zero_outside_crop=True)
    )
    assert plain.folders != zeroed.folders  # one entry per setting
    volume = load_volume(anat / f"{stem}_T1w.nii.gz")
    kept = to_slices(crop.inside(prepare(volume, Preprocessing()).plan))
    full, cut = plain.arrays(0)[0], zeroed.arrays(0)[0]
    assert (full[~kept] > 0).any()  # the noise around the head is there ...
    assert not cut[~kept].any()  # ... and gone
    np.testing.assert_array_equal(cut[kept], full[kept])
    np.testing.assert_array_equal(zeroed.arrays(0)[1], plain.arrays(0)[1])  # masks untouched


def test_zero_outside_crop_zeroes_the_exact_paths_input_and_output(tmp_path):
    volume, _ = saved_scan(tmp_path)
    seen = []

    def run(x):  # logits that show the input; records how much input it was given
        seen.append(float(x.sum()))
        return 20 * x - 10

    scan = prepare(volume, Preprocessing(zero_outside_crop=True))
    p = scan_probabilities([run], [None], scan, crop=False)
    kept = crop.inside(prepare(volume, Preprocessing()).plan)
    image = normalize(volume.data, "mri")
    assert 0.2 < kept.mean() < 0.9  # the crop leaves something out
    np.testing.assert_allclose(sum(seen), float((image * kept).sum(dtype=np.float64)), rtol=1e-5)
    expected = np.where(kept, 1 / (1 + np.exp(10 - 20 * image)), 0)
    np.testing.assert_allclose(p, expected, atol=1e-6)


def test_cpu_batch_holds_128_first_level_maps_unless_told():
    from strokeseg.inference.engine import Predictor
    from strokeseg.inference.options import InferenceOptions

    meta = {"data": TrainingData(Preprocessing())}

    def batch(width, **options):
        network = strokeseg.deploy(strokeseg.create_model("unetpp", width=width, norm="batch"))
        options = InferenceOptions(device="cpu", runtime="eager", **options)
        return Predictor([network], meta, options).batching.batch_size

    assert batch(1.0) == 4  # 32 filters: under 1.5 GiB on an ATLAS-sized scan
    assert batch(0.5) == 8 and batch(0.25) == 8  # 16 and 8 filters: 8 slices at most
    assert batch(1.0, batch_size=2) == 2
    full, quarter = (
        strokeseg.deploy(strokeseg.create_model("unetpp", width=w, norm="batch")) for w in (1, 0.25)
    )
    eager = InferenceOptions(device="cpu", runtime="eager")
    assert Predictor([quarter, full], meta, eager).batching.batch_size == 4


def test_the_crop_is_the_default_only_where_it_keeps_the_answer(capsys):
    from strokeseg.inference.engine import Predictor
    from strokeseg.inference.options import InferenceOptions

    def network(padding):
        model = strokeseg.create_model("unetpp", width=0.125, norm="batch", padding=padding)
        return strokeseg.deploy(model)

    zeroed = {"data": TrainingData(Preprocessing(zero_outside_crop=True))}
    plain = {"data": TrainingData(Preprocessing())}
    replicate, zeros = network("replicate"), network("zeros")

    def crops(networks, meta, **options):
        options = InferenceOptions(device="cpu", runtime="eager", **options)
        return Predictor(networks, meta, options).crop

    assert crops([replicate], zeroed) and capsys.readouterr().err == ""
    for networks, meta in (([zeros], zeroed), ([replicate], plain), ([replicate, zeros], zeroed)):
        assert not crops(networks, meta)
        assert "segmenting whole slices" in capsys.readouterr().err
    assert crops([zeros], zeroed, crop=True) and not crops([replicate], zeroed, crop=False)
    assert capsys.readouterr().err == ""  # asked for: no note
