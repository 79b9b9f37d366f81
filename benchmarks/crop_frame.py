"""Why the crop moves a 2.5D network's answer: its output depends on where the frame ends.

For each test subject of a checkpoint (``split.json`` beside it), the axial slice holding the
most lesion is segmented whole, as the exact path does (zeroed outside the crop when the model
was trained so, padded to multiples of 16), and as its crop box inside zero frames of growing
width. The input is the same inside the box and zero outside it on every line; only the
extent of the zero frame around it changes. The table gives, inside the box, the largest and
the mean change in probability against the whole slice, and the mean probability on the
lesion.

    python benchmarks/crop_frame.py --checkpoint RUN/best.ckpt --data DATASET [--pads 0 16 32 48 96]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from strokeseg.data.crop import SlicePlan, whole_plan
from strokeseg.data.layouts import find_dataset, load_subject
from strokeseg.data.preprocessing import prepare
from strokeseg.inference.checkpoint import input_channels, load_network


def probability(network, plan: SlicePlan, image: np.ndarray, context: int) -> np.ndarray:
    x = torch.from_numpy(plan.extract(image, np.array([0]), context))
    with torch.inference_mode():
        return torch.sigmoid(network(x))[0, 0].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--pads", type=int, nargs="+", default=[0, 16, 32, 48, 96])
    args = parser.parse_args()
    network, meta = load_network(args.checkpoint)
    network.eval()
    context = (input_channels(meta) - 1) // 2
    preprocessing = meta["data"].preprocessing
    split = json.loads((args.checkpoint.parent / "split.json").read_text(encoding="utf-8"))
    subjects = {s.id: s for s in find_dataset(args.data).subjects}
    print(f"{args.checkpoint} ({input_channels(meta)} input channels)")
    print("subject       slice  frame (px)  size      max|dp|  mean|dp|  lesion p")
    for sid in split["test"]:
        volume, mask = load_subject(subjects[sid])
        if mask is None or not mask.any():
            continue
        scan = prepare(volume, preprocessing)
        plan, image = scan.plan, scan.network_input()
        z = int(np.argmax(mask.sum(axis=(0, 1))))
        whole = whole_plan(volume.data.shape)
        whole = SlicePlan(whole.shape, whole.boxes[whole.boxes[:, 0] == z])
        _, y0, y1, x0, x1 = plan.boxes[plan.boxes[:, 0] == z][0]
        _, wy0, _, wx0, _ = whole.boxes[0]
        reference = probability(network, whole, image, context)
        reference = reference[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]  # the box, whole path
        box = SlicePlan(volume.data.shape, np.array([[z, y0, y1, x0, x1]]))
        lesion = box.extract(mask.astype(np.float32), np.array([0]))[0, 0] > 0
        frame = tuple(int(v) for v in whole.boxes[0, [2, 4]] - whole.boxes[0, [1, 3]])
        print(
            f"{sid}  {z:5d}  whole       {str(frame):9s}  {'':17s}  {reference[lesion].mean():.3f}"
        )
        for pad in args.pads:
            framed = SlicePlan(box.shape, box.boxes + np.array([0, -pad, pad, -pad, pad]))
            p = probability(network, framed, image, context)
            p = p[pad : pad + y1 - y0, pad : pad + x1 - x0]
            d = np.abs(p - reference)
            size = (int(y1 - y0 + 2 * pad), int(x1 - x0 + 2 * pad))
            print(
                f"{'':12s}  {'':5s}  box + {pad:<4d}  {str(size):9s} {d.max():7.3f}  "
                f"{d.mean():8.4f}  {p[lesion].mean():.3f}"
            )


if __name__ == "__main__":
    main()
