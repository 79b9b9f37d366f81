"""BIDS derivatives file-name rules, transcribed from the BIDS specification's schema
(bids-specification ``src/schema/rules/entities.yaml`` for the order,
``rules/files/raw/anat.yaml`` "nonparametric" and ``rules/files/deriv/imaging.yaml``
"anat_nonparametric_mask" / "anat_nonparametric_discrete_segmentation" /
"anat_nonparametric_probabilistic_segmentation" for what each suffix
allows), independently of strokeseg's naming code."""

from __future__ import annotations

import re
from pathlib import Path

ORDER = ["sub", "ses", "cohort", "task", "acq", "ce", "rec", "dir", "run", "mod", "echo",
         "flip", "inv", "mt", "part", "proc", "hemi", "space", "split", "recording", "chunk",
         "atlas", "seg", "scale", "res", "den", "label", "prov", "desc"]  # fmt: skip
NONPARAMETRIC = {"sub", "ses", "task", "acq", "ce", "rec", "run", "echo", "part"}
ALLOWED = {
    "mask": NONPARAMETRIC | {"space", "res", "label", "desc"},
    "dseg": NONPARAMETRIC | {"cohort", "space", "atlas", "seg", "scale", "res", "desc"},
    "probseg": NONPARAMETRIC | {"cohort", "space", "atlas", "seg", "scale", "res", "label", "desc"},
}
EXTENSIONS = {
    "mask": {".nii.gz", ".nii", ".json"},
    "dseg": {".nii.gz", ".nii", ".json", ".tsv"},
    "probseg": {".nii.gz", ".nii", ".json"},
}
LABEL = re.compile(r"[a-zA-Z0-9]+")


def check_derivative_path(relative: Path) -> dict[str, str]:
    """Assert ``relative`` (inside a derivatives dataset) is a valid anat mask/(prob|d)seg name.

    Returns its entities. Checks: folder ``sub-X/[ses-Y/]anat`` agreeing with the name,
    key-value pairs with alphanumeric labels, no repeated key, keys in the specification's
    order, the suffix's allowed entities, the extension, ``sub`` first and required.
    """
    parts = relative.parts
    assert parts[-2] == "anat", relative
    name = parts[-1]
    stem, dot, extension = name.partition(".")
    extension = dot + extension
    *pairs, suffix = stem.split("_")
    assert suffix in ALLOWED, f"{name}: suffix {suffix}"
    assert extension in EXTENSIONS[suffix], f"{name}: extension {extension}"
    keys, entities = [], {}
    for pair in pairs:
        key, sep, value = pair.partition("-")
        assert sep and LABEL.fullmatch(value), f"{name}: {pair!r} is not key-label"
        assert key not in entities, f"{name}: {key} repeated"
        keys.append(key)
        entities[key] = value
    assert keys and keys[0] == "sub", name
    assert all(k in ORDER for k in keys), f"{name}: unknown entity in {keys}"
    assert keys == sorted(keys, key=ORDER.index), f"{name}: entity order {keys}"
    assert set(keys) <= ALLOWED[suffix], f"{name}: {set(keys) - ALLOWED[suffix]} not allowed"
    assert parts[0] == f"sub-{entities['sub']}", relative
    if "ses" in entities:
        assert parts[1] == f"ses-{entities['ses']}" and len(parts) == 4, relative
    else:
        assert len(parts) == 3, relative
    return entities
