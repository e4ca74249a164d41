"""`casher._roots.real_path` resolves like `os.path.realpath` (it only
caches what it learned about directories)."""

from __future__ import annotations

import os
from pathlib import Path

from casher import _roots


def test_real_path_agrees_with_realpath_through_links(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "pkg").mkdir(parents=True)
    (real / "pkg" / "mod.py").write_text("x = 1\n")
    (tmp_path / "linked").symlink_to(real)  # a linked directory
    (real / "pkg" / "alias.py").symlink_to(real / "pkg" / "mod.py")  # a linked file
    (real / "pkg" / "up").symlink_to(tmp_path)  # `..` after a link
    names = [
        real / "pkg" / "mod.py",
        tmp_path / "linked" / "pkg" / "mod.py",
        tmp_path / "linked" / "pkg" / "alias.py",
        real / "pkg" / "up" / "real" / "pkg" / "mod.py",
        Path(str(real / "pkg" / "up") + "/../x.py"),
        tmp_path / "linked" / "pkg" / "missing.py",
    ]
    for name in names:
        assert _roots.real_path(str(name)) == os.path.realpath(name), name
    relative = os.path.relpath(real / "pkg" / "mod.py")
    assert _roots.real_path(relative) == os.path.realpath(relative)


def test_a_project_file_behind_a_linked_directory_is_project_code(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "m.py").write_text("x = 1\n")
    (tmp_path / "via").symlink_to(tmp_path / "proj")
    assert _roots.project_file(str(tmp_path / "via" / "m.py")) == str((tmp_path / "proj" / "m.py").resolve())
    assert _roots.project_dir(str(tmp_path / "via"))
