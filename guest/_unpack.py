"""Safe extraction of OCI layer tar streams into a root filesystem (image-spec layer.md).

Rules, each refused with UnsafeLayerError naming the entry:
- entry names are relative and never contain `..` (absolute names and `../` are refused, not rewritten);
- parent directories are resolved the way the container will see them: a symlink met on the way is followed
  *inside* the root (an absolute target restarts at the root, `..` stops at the root), so no write can land
  outside it whatever links earlier entries or layers made;
- symlinks whose relative target climbs above the root are refused (absolute targets are fine: the container
  reads them relative to its root);
- hard links must name an existing regular file of the root, by a relative name without `..`;
- character and block devices are refused (FIFOs are allowed); unknown entry types are refused;
- whiteouts: `.wh.NAME` removes NAME and `.wh..wh..opq` empties its directory, both only of what lower layers
  made (layer.md "Whiteouts"); the whiteout entries themselves are not extracted;
- modes are kept exactly (including setuid/setgid/sticky), directories' modes and times are applied at the end
  so that a read-only directory can still be filled; ownership is applied only when running as root.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import IO, cast

from guest._errors import LayoutError, UnsafeLayerError
from guest._streams import TAR_BLOCK, Readable

__all__ = ["RootfsBuilder"]

WHITEOUT_PREFIX = ".wh."  # layer.md "Whiteouts"
OPAQUE_WHITEOUT = ".wh..wh..opq"
MAX_SYMLINK_HOPS = 40  # as Linux's path resolution (MAXSYMLINKS)
READ_SIZE = 1024 * 1024  # tar stream read per call from the decompressor: file contents are written in such pieces


class TarStream:
    """A layer's tar stream as tarfile reads it (headers: `read`, `tell`, `seek`), and file contents written
    straight from the decompressor's output (`copy_to`: one os.write per piece, no copy in Python).

    tarfile's own stream mode ("r|") copies every byte three times on the way (its read buffer, the join and
    slices of `_Stream.__read`, the extracted file object's buffer), which made extraction the largest CPU cost
    of an unpack; here tarfile parses the headers (ustar, GNU, pax) in its seekable mode ("r:"), and the
    seeks it makes are forward skips, or back within the piece at hand. Like a Go reader (umoci, containerd),
    a stream whose writer left out the end-of-archive blocks or the last block's padding is read as complete:
    zero bytes are supplied at its end (after the inner stream, so never hashed into the diff_id).
    """

    def __init__(self, inner: Readable) -> None:
        self._inner = inner
        self._piece: bytes | memoryview = b""
        self._offset = 0  # in _piece
        self._position = 0  # in the stream, of _piece[_offset]
        self._count = 0  # bytes read from inner
        self._state = 0  # 0: reading inner, 1: supplying the end padding, 2: ended

    def _next_piece(self) -> bool:
        if self._state == 0:
            piece = self._inner.read(READ_SIZE)
            if piece:
                self._count += len(piece)
                self._piece, self._offset = piece, 0
                return True
            self._state = 1
            self._piece, self._offset = bytes(-self._count % TAR_BLOCK + 2 * TAR_BLOCK), 0
            return True
        self._state = 2
        return False

    def _take(self, size: int) -> memoryview | None:
        """Up to `size` (> 0) next bytes of the stream, without copying; None at its end."""
        while self._offset >= len(self._piece):
            if self._state == 2 or not self._next_piece():
                return None
        view = memoryview(self._piece)[self._offset : self._offset + size]
        self._offset += len(view)
        self._position += len(view)
        return view

    def read(self, size: int = -1, /) -> bytes:
        parts: list[bytes] = []
        remaining = size if size >= 0 else 1 << 62
        while remaining and (view := self._take(remaining)) is not None:
            parts.append(bytes(view))
            remaining -= len(view)
        return b"".join(parts)

    def tell(self) -> int:
        return self._position

    def seek(self, position: int, whence: int = 0, /) -> int:
        if whence != 0:
            raise OSError("TarStream: only absolute seeks")
        back = self._position - position
        if 0 < back <= self._offset:
            self._offset -= back
            self._position = position
        elif back > 0:
            raise OSError("TarStream: cannot seek back beyond the piece at hand")
        while self._position < position and self._take(position - self._position) is not None:
            pass
        return self._position

    def copy_to(self, fd: int, size: int) -> None:
        """Write the next `size` bytes to `fd`, then skip to the next tar block; EOFError if the stream ends."""
        remaining = size
        while remaining:
            view = self._take(remaining)
            if view is None:
                raise EOFError("unexpected end of data")
            remaining -= len(view)
            while view:
                view = view[os.write(fd, view) :]
        self.seek(self._position + (-size % TAR_BLOCK))


def _components(name: str, entry: str) -> list[str]:
    if name.startswith("/"):
        raise UnsafeLayerError(f"{entry}: absolute path, expected a path relative to the root")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayerError(f"{entry}: path contains '..', expected a path inside the root")
    return parts


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


class RootfsBuilder:
    """Applies layers in order to `root` (an existing, empty, private directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._as_root = os.geteuid() == 0
        self._dir_meta: dict[Path, tarfile.TarInfo] = {}

    # --- path resolution ---
    def _resolve_dir(self, parts: list[str], entry: str, create: bool) -> Path | None:
        """The real directory for `parts` as seen from inside the root; None if missing and not `create`."""
        resolved: list[str] = []
        pending = list(parts)
        hops = 0
        while pending:
            comp = pending.pop(0)
            if comp in ("", "."):
                continue
            if comp == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = self.root.joinpath(*resolved, comp)
            try:
                st = candidate.lstat()
            except FileNotFoundError:
                if not create:
                    return None
                candidate.mkdir(mode=0o755)
                resolved.append(comp)
                continue
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise UnsafeLayerError(f"{entry}: more than {MAX_SYMLINK_HOPS} symlinks on the path")
                target = str(candidate.readlink())
                if target.startswith("/"):
                    resolved = []
                pending = target.split("/") + pending
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafeLayerError(f"{entry}: {'/'.join([*resolved, comp])} is not a directory")
            resolved.append(comp)
        return self.root.joinpath(*resolved)

    def _key(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    # --- one layer ---
    def apply_layer(self, stream: Readable, layer: str) -> None:
        """Extract one uncompressed layer tar stream (read sequentially, never seeking)."""
        created: set[str] = set()  # real paths this layer made: whiteouts only hide lower layers' files
        try:
            tar_stream = TarStream(stream)
            with tarfile.open(fileobj=cast(IO[bytes], tar_stream), mode="r:") as tar:
                for member in tar:
                    entry = f"layer {layer} entry {member.name!r}"
                    try:
                        self._apply(tar, tar_stream, member, entry, created)
                    except ValueError as exc:  # embedded NUL in a name or link target
                        raise UnsafeLayerError(f"{entry}: {exc}") from None
        except (tarfile.TarError, EOFError) as exc:
            raise LayoutError(f"layer {layer}: corrupt tar stream ({exc})") from None

    def _apply(
        self, tar: tarfile.TarFile, stream: TarStream, member: tarfile.TarInfo, entry: str, created: set[str]
    ) -> None:
        parts = _components(member.name, entry)
        if not parts:  # the root itself ("./"): keep its metadata for the end
            if member.isdir():
                self._dir_meta[self.root] = member
            return
        *parents, last = parts
        if last.startswith(WHITEOUT_PREFIX):
            self._whiteout(parents, last, entry, created)
            return
        if member.ischr() or member.isblk():
            raise UnsafeLayerError(f"{entry}: device node (type {member.type!r}) refused in a root filesystem")
        parent = self._resolve_dir(parents, entry, create=True)
        assert parent is not None
        dest = parent / last
        created.add(self._key(dest))
        if member.isdir():
            if not (dest.is_dir() and not dest.is_symlink()):
                if os.path.lexists(dest):
                    _remove(dest)
                dest.mkdir(mode=0o700)
            self._dir_meta[dest] = member
            return
        if os.path.lexists(dest):
            _remove(dest)
            self._dir_meta.pop(dest, None)
        if member.isreg():
            self._write_file(tar, stream, member, dest)
        elif member.issym():
            self._check_symlink(len(parent.relative_to(self.root).parts), member.linkname, entry)
            dest.symlink_to(member.linkname)
        elif member.islnk():
            source = self._hardlink_source(member.linkname, entry)
            os.link(source, dest, follow_symlinks=False)
            return  # a hard link shares the source's inode: its mode and times are the source's
        elif member.isfifo():
            os.mkfifo(dest, 0o600)
        else:
            raise UnsafeLayerError(f"{entry}: tar entry type {member.type!r} is not supported")
        self._set_meta(dest, member)

    def _write_file(self, tar: tarfile.TarFile, stream: TarStream, member: tarfile.TarInfo, dest: Path) -> None:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            if member.sparse is None:
                stream.copy_to(fd, member.size)  # the contents follow the header: written as they come
            else:  # a GNU sparse file: tarfile maps its data blocks and holes
                source = tar.extractfile(member)
                assert source is not None  # isreg()
                while chunk := source.read(READ_SIZE):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def _check_symlink(self, depth: int, target: str, entry: str) -> None:
        """`depth`: how many directories below the root the link sits (its real location)."""
        if not target:
            raise UnsafeLayerError(f"{entry}: symlink with an empty target")
        if target.startswith("/"):
            return  # resolved against the container's root by whoever follows it
        for comp in target.split("/"):
            if comp == "..":
                depth -= 1
                if depth < 0:
                    raise UnsafeLayerError(f"{entry}: symlink target {target!r} escapes the root")
            elif comp not in ("", "."):
                depth += 1

    def _hardlink_source(self, linkname: str, entry: str) -> Path:
        try:
            parts = _components(linkname, entry)
        except UnsafeLayerError:
            raise UnsafeLayerError(f"{entry}: hard link target {linkname!r} escapes the root") from None
        if not parts:
            raise UnsafeLayerError(f"{entry}: hard link to the root directory")
        parent = self._resolve_dir(parts[:-1], entry, create=False)
        source = parent / parts[-1] if parent is not None else None
        if source is None or not source.exists() or source.is_symlink() or not source.is_file():
            raise UnsafeLayerError(f"{entry}: hard link target {linkname!r} is not a regular file in the root")
        return source

    def _whiteout(self, parents: list[str], last: str, entry: str, created: set[str]) -> None:
        parent = self._resolve_dir(parents, entry, create=False)
        if parent is None:
            return  # nothing below to hide
        if last == OPAQUE_WHITEOUT:
            for child in list(parent.iterdir()):
                if self._key(child) not in created:
                    _remove(child)
            return
        name = last.removeprefix(WHITEOUT_PREFIX)
        if name in ("", ".", "..") or name.startswith(WHITEOUT_PREFIX):
            raise UnsafeLayerError(f"{entry}: whiteout names {name!r}, expected a file name")
        target = parent / name
        if self._key(target) not in created and os.path.lexists(target):
            _remove(target)

    def _set_meta(self, dest: Path, member: tarfile.TarInfo) -> None:
        if self._as_root:
            os.lchown(dest, member.uid, member.gid)
        if not member.issym():
            dest.chmod(stat.S_IMODE(member.mode))  # after chown, which clears setuid bits
        os.utime(dest, (member.mtime, member.mtime), follow_symlinks=False)

    def finish(self) -> None:
        """Apply directory modes and times, deepest first (so read-only directories could be filled)."""
        for path in sorted(self._dir_meta, key=lambda p: len(p.parts), reverse=True):
            if path.is_dir() and not path.is_symlink():
                self._set_meta(path, self._dir_meta[path])
        self._dir_meta.clear()
