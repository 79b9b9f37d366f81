"""Frame masking in training (training/frames.py): exact emulation of a cut-out, the boxes."""

from __future__ import annotations

import pytest
import torch

from strokeseg.errors import StrokesegError
from strokeseg.models import create_model
from strokeseg.training.config import load_config
from strokeseg.training.frames import FrameMask, nonzero_boxes


def batchnorm_unetpp() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("unetpp", in_channels=3, width=0.125, norm="batch")
    for module in model.modules():  # running statistics that map a zero input to non-zero
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def test_framed_whole_input_computes_what_the_cut_out_computes():
    model = batchnorm_unetpp()
    y0, y1, x0, x1 = 16, 80, 32, 96  # on the network's 16-pixel lattice
    image = torch.zeros(1, 3, 112, 128)
    image[..., y0:y1, x0:x1] = torch.rand(1, 3, y1 - y0, x1 - x0)
    region = torch.zeros(1, 1, 112, 128)
    region[..., y0:y1, x0:x1] = 1
    with torch.inference_mode():
        cut = model(image[..., y0:y1, x0:x1])
        whole = model(image)[..., y0:y1, x0:x1]
        frames = FrameMask(model)
        unchanged = model(image)[..., y0:y1, x0:x1]
        with frames.framed(region):
            framed = model(image)[..., y0:y1, x0:x1]
        after = model(image)[..., y0:y1, x0:x1]
    assert (whole - cut).abs().max() > 1e-2  # the frame matters to this network...
    torch.testing.assert_close(framed, cut, atol=1e-5, rtol=0)  # ...and framing reproduces it
    torch.testing.assert_close(unchanged, whole, atol=0, rtol=0)  # no region: no change
    torch.testing.assert_close(after, whole, atol=0, rtol=0)  # the region ends with the block


def test_nonzero_boxes_frame_the_chosen_samples_only():
    image = torch.zeros(3, 2, 8, 10)
    image[0, 1, 2:5, 3:8] = 1.0  # channel 1 only: any channel counts
    image[0, 0, 4, 6] = 2.0  # inside the same box
    image[1, 0, 1, 1] = 1.0
    regions = nonzero_boxes(image, torch.tensor([True, False, True]))
    expected = torch.zeros(8, 10)
    expected[2:5, 3:8] = 1
    torch.testing.assert_close(regions[0, 0], expected)
    assert regions[1].all()  # not chosen: the whole input
    assert regions[2].all()  # chosen but all zero: the whole input
    assert regions.shape == (3, 1, 8, 10)


def test_crop_frame_needs_inputs_zeroed_outside_the_crop():
    with pytest.raises(StrokesegError, match="data.crop_frame.*zero_outside_crop"):
        load_config(None, ["data.crop_frame=0.5"])
    config = load_config(None, ["data.crop_frame=0.5", "data.zero_outside_crop=true"])
    assert config.data.crop_frame == 0.5


def test_a_training_step_frames_the_chosen_share(monkeypatch):
    from strokeseg.training.run import build_module

    config = load_config(
        "tiny", ["data.crop_frame=1.0", "data.zero_outside_crop=true", "data.context_slices=0"]
    )
    module = build_module(config, {"modality": "mri"})
    seen = []
    monkeypatch.setattr(
        module.frames,
        "framed",
        lambda region: seen.append(region) or FrameMask.framed(module.frames, region),
    )
    image = torch.zeros(2, 1, 64, 64)
    image[:, :, 8:40, 4:36] = torch.rand(2, 1, 32, 32)
    batch = {"image": image, "mask": (image > 0.5).float()}
    loss = module.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss) and len(seen) == 1
    expected = torch.zeros(64, 64)
    expected[8:40, 4:36] = 1
    torch.testing.assert_close(seen[0][:, 0], expected.expand(2, 64, 64))
    assert module.frames.region is None  # the step's region ends with it
