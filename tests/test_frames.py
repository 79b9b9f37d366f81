"""Frame masking in training (training/frames.py): exact emulation of a cut-out, the boxes."""

from __future__ import annotations

import torch

from strokeseg.models import create_model
from strokeseg.training.config import load_config
from strokeseg.training.frames import FrameMask, frame_consistency, random_boxes


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


def test_random_boxes_cut_lattice_margins_and_leave_32_px():
    regions = random_boxes((64, 1, 64, 80), torch.Generator().manual_seed(0))
    assert regions.shape == (64, 1, 64, 80)
    for region in regions[:, 0]:
        rows = torch.nonzero(region.any(dim=1)).flatten()
        cols = torch.nonzero(region.any(dim=0)).flatten()
        assert region[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all()  # one box
        assert region.sum() == len(rows) * len(cols)
        assert len(rows) >= 32 and len(cols) >= 32
        assert rows[0] % 16 == 0 and cols[0] % 16 == 0  # starts on the lattice
    assert len({int(r.sum()) for r in regions}) > 5  # boxes of many sizes


def test_frame_consistency_is_zero_only_where_the_frame_does_not_matter():
    torch.manual_seed(0)
    pointwise = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 1)
    )
    image = torch.rand(2, 1, 64, 64)
    assert frame_consistency(pointwise, FrameMask(pointwise), image) == 0  # no 3x3 conv
    model = batchnorm_unetpp()
    three = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        assert frame_consistency(model, FrameMask(model), three) > 1e-6


def test_a_training_step_adds_the_frame_term():
    from strokeseg.training.run import build_module

    config = load_config("tiny", ["loss.frame_consistency=20", "data.context_slices=0"])
    module = build_module(config, {"modality": "mri"})
    image = torch.rand(4, 1, 64, 64)
    batch = {"image": image, "mask": (image > 0.9).float()}
    loss = module.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss) and module.frames.region is None
    plain = build_module(load_config("tiny", ["data.context_slices=0"]), {"modality": "mri"})
    assert plain.frames is None
