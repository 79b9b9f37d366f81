"""``predict --part I --parts N`` and ``gather`` through the real command line (tiny
checkpoint): the parts partition the folder, and gathering them gives one run's bytes."""

from __future__ import annotations

from test_reports_cli import scans_folder

N_SCANS, N_PARTS = 4, 3


def test_parts_partition_the_folder_and_gather_equals_one_run(
    tiny_run, tiny_dataset, tmp_path, cli
):
    scans, ckpt = scans_folder(tiny_dataset, tmp_path, range(N_SCANS)), tiny_run / "best.ckpt"
    single, split = tmp_path / "single", tmp_path / "split"
    args = ("predict", "-i", scans, "--checkpoint", ckpt, "--report")
    assert cli(*args, "-o", single).returncode == 0
    shares = []
    for i in range(N_PARTS):
        before = set(split.glob("*_mask.nii.gz")) if split.exists() else set()
        result = cli(*args, "-o", split, "--part", i, "--parts", N_PARTS)
        assert result.returncode == 0, result.stderr[-3000:]
        shares.append({p.name for p in set(split.glob("*_mask.nii.gz")) - before})
        assert not (split / "lesions.csv").exists() and not (split / "report.html").exists()
        if i == 0:
            early = cli("gather", "-i", scans, "-o", split)
            assert early.returncode == 1 and "not segmented yet" in early.stderr
            assert "Traceback" not in early.stderr and not (split / "lesions.csv").exists()
    expected = [{f"case{j}_mask.nii.gz" for j in range(i, N_SCANS, N_PARTS)} for i in range(3)]
    assert shares == expected  # i-th of every N: disjoint, together every scan

    result = cli("gather", "-i", scans, "-o", split)
    assert result.returncode == 0, result.stderr[-3000:]
    for path in sorted(single.iterdir()):  # every file, per scan and per run, byte for byte
        assert (split / path.name).read_bytes() == path.read_bytes(), path.name
    assert sorted(p.name for p in split.iterdir()) == sorted(p.name for p in single.iterdir())

    masks = {p.name: p.stat().st_mtime_ns for p in split.glob("*_mask.nii.gz")}
    plain = cli("predict", "-i", scans, "-o", split, "--checkpoint", ckpt, "--skip-existing")
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in split.glob("*_mask.nii.gz")} == masks
    assert (split / "lesions.csv").read_bytes() == (single / "lesions.csv").read_bytes()


def test_part_and_parts_are_checked_in_one_line(tiny_run, tmp_path, cli):
    ckpt = tiny_run / "best.ckpt"
    base = ("predict", "-i", tmp_path, "-o", tmp_path / "out", "--checkpoint", ckpt)
    for extra, message in (
        (("--part", "3", "--parts", "3"), "--part 3: must be 0..2 for --parts 3"),
        (("--part", "-1", "--parts", "2"), "--part -1: must be 0..1"),
        (("--part", "0"), "--part I and --parts N go together"),
        (("--parts", "0", "--part", "0"), "--part I and --parts N go together"),
    ):
        result = cli(*base, *extra)
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "out").exists()
