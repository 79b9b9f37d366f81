"""Imports run one way, in the order DESIGN.md section 9 draws the folders.

A module may import its own folder and folders listed before it, never one after it:
data < synth < models < evaluation < training < inference < reports < jobs < commands (and
cli). The package root holds only ``__init__``, ``cli``, ``errors`` and ``extras``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import strokeseg

PACKAGE = Path(strokeseg.__file__).parent
ORDER = [
    "errors",
    "extras",
    "data",
    "synth",
    "models",
    "evaluation",
    "training",
    "inference",
    "reports",
    "jobs",
    "commands",
]


def layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "strokeseg" or len(parts) == 1:
        return None  # third-party, or the package's own __init__ (version, public API)
    if parts[1] == "cli":
        return "commands"
    if parts[1] not in ORDER:
        raise ValueError(f"{module}: in no layer of the folder order")
    return parts[1]


def imports_against_the_order(root: Path) -> list[str]:
    wrong = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        own = layer(module.removesuffix(".__init__"))
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                other = layer(name)
                if other is not None and ORDER.index(other) > ORDER.index(own):
                    wrong.append(f"{module} imports {name}")
    return wrong


def test_every_import_runs_down_the_folder_order():
    assert imports_against_the_order(PACKAGE) == []


def test_the_package_root_holds_no_jobs():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules == {"__init__", "cli", "errors", "extras"}
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert folders == set(ORDER) - {"errors", "extras"}


def test_the_check_catches_an_import_against_the_order(tmp_path):
    package = tmp_path / "strokeseg"
    (package / "evaluation").mkdir(parents=True)
    (package / "evaluation" / "bad.py").write_text("from strokeseg.inference import engine\n")
    (package / "inference").mkdir()
    (package / "inference" / "good.py").write_text("from strokeseg.evaluation import metrics\n")
    assert imports_against_the_order(package) == [
        "strokeseg.evaluation.bad imports strokeseg.inference"
    ]
