"""The commit's diff ships in ksmlab/data, unchanged, and pyproject's package-data covers it."""

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIFF = ROOT / "ksmlab" / "data" / "ksm-commit.diff"


def test_diff_is_the_commit():
    text = DIFF.read_text(encoding="utf-8")
    lines = text.splitlines()
    files = [line.split()[2][2:] for line in lines if line.startswith("diff --git ")]
    assert files == ["mm/ksm.c", "mm/rmap.c"]
    # pre- and post-image blob ids of upstream commit 80e14822 (mm/ksm.c, mm/rmap.c)
    assert "index 37cc92f83a8d04cd33b3e6c02e7b60e930ed8a16..20f46a7b2799aaca1366348a3929897c32a0c27c 100644" in lines
    assert "index ebdf582ef18571d0c07d91dc9ee1e684251372af..2e38e904832729f8a7d99af924bc92f85fedb072 100644" in lines
    added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++ "))
    removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("--- "))
    assert (added, removed) == (25, 48), "the commit's diffstat is 25 insertions, 48 deletions"
    assert text.endswith("\n") and "\r" not in text


def test_package_data_globs_cover_the_data():
    with (ROOT / "pyproject.toml").open("rb") as f:
        globs = tomllib.load(f)["tool"]["setuptools"]["package-data"]["ksmlab"]
    rel = DIFF.relative_to(ROOT / "ksmlab").as_posix()
    assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} is not matched by package-data {globs}"
    assert "data/**/*.json" in globs


def test_package_data_globs_cover_every_shipped_source():
    """The 2.6.32.70 files sit two folders below data/sources/: "data/sources/*" alone would leave them out of a wheel."""
    from ksmlab.sources import FILES, path
    with (ROOT / "pyproject.toml").open("rb") as f:
        globs = tomllib.load(f)["tool"]["setuptools"]["package-data"]["ksmlab"]
    for name in FILES:
        rel = path(name).relative_to(ROOT / "ksmlab").as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} is not matched by package-data {globs}"
