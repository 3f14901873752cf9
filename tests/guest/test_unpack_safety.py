"""Hostile layer tars are refused by `guest unpack` and leave nothing behind (named datasets)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.guest._images import device_, dir_, file_, link_, tar_bytes, write_image

REFUSED = {
    "dotdot-path": ([file_("../escape", b"x")], "path contains '..'"),
    "nested-dotdot": ([dir_("a"), file_("a/../../escape", b"x")], "path contains '..'"),
    "absolute-path": ([file_("/etc/passwd", b"x")], "absolute path"),
    "symlink-escape": ([link_("up", "../../../etc")], "escapes the root"),
    "nested-symlink-escape": ([dir_("a/b"), link_("a/b/up", "../../../etc/shadow")], "escapes the root"),
    "hardlink-escape": ([link_("h", "../../etc/passwd", tarfile.LNKTYPE)], "hard link target"),
    "hardlink-absolute": ([link_("h", "/etc/passwd", tarfile.LNKTYPE)], "hard link target"),
    "hardlink-missing": ([link_("h", "nothing", tarfile.LNKTYPE)], "is not a regular file in the root"),
    "hardlink-to-dir": ([dir_("d"), link_("h", "d", tarfile.LNKTYPE)], "is not a regular file in the root"),
    "char-device": ([device_("dev/null", tarfile.CHRTYPE)], "device node"),
    "block-device": ([device_("dev/sda", tarfile.BLKTYPE)], "device node"),
    "whiteout-dotdot": ([dir_("a"), file_("a/.wh...")], "whiteout names '..'"),
    "file-as-parent": ([file_("f", b"x"), file_("f/child", b"y")], "f is not a directory"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_hostile_layer_refused(tmp_path: Path, case: str) -> None:
    entries, message = REFUSED[case]
    write_image(tmp_path / "img", [tar_bytes(entries)])
    done = run_cli("guest", "unpack", f"oci:{tmp_path / 'img'}", str(tmp_path / "root"))
    assert done.returncode == 1, done.stderr.decode()
    assert message in done.stderr.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img"]  # no rootfs, no staging directory


def test_writes_through_symlinks_stay_inside(tmp_path: Path) -> None:
    """An absolute symlink to / and a relative one climbing to the root are followed inside the root only."""
    lower = tar_bytes([link_("hostroot", "/"), dir_("a"), link_("a/top", "..")])
    upper = tar_bytes([file_("hostroot/tmp/planted", b"p"), file_("a/top/a/also", b"q")])
    write_image(tmp_path / "img", [lower, upper])
    outside = Path("/tmp/planted")
    existed = outside.exists()
    done = run_cli("guest", "unpack", f"oci:{tmp_path / 'img'}", str(tmp_path / "root"))
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "root/tmp/planted").read_bytes() == b"p"
    assert (tmp_path / "root/a/also").read_bytes() == b"q"
    assert outside.exists() == existed


def test_later_layer_replaces_symlink_instead_of_following_it(tmp_path: Path) -> None:
    lower = tar_bytes([file_("target", b"keep"), link_("name", "target")])
    upper = tar_bytes([file_("name", b"new")])
    write_image(tmp_path / "img", [lower, upper])
    done = run_cli("guest", "unpack", f"oci:{tmp_path / 'img'}", str(tmp_path / "root"))
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "root/target").read_bytes() == b"keep"
    assert not (tmp_path / "root/name").is_symlink()


def test_fifo_allowed_and_unterminated_tar_accepted(tmp_path: Path) -> None:
    """FIFOs are not devices; a tar without end-of-archive blocks (umoci 0.4 writes those) still unpacks."""
    fifo = tarfile.TarInfo("run/pipe")
    fifo.type = tarfile.FIFOTYPE
    data = tar_bytes([(fifo, None), file_("x", b"abc")])
    write_image(tmp_path / "img", [data[: 2 * 512 + 3]], compression="none")
    done = run_cli("guest", "unpack", f"oci:{tmp_path / 'img'}", str(tmp_path / "root"))
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "root/x").read_bytes() == b"abc"
