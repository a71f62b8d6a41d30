#!/usr/bin/python3
"""A passthrough FUSE filesystem whose data I/O can be switched to fail with EIO.

    eio_fs.py BACKING MOUNTPOINT SWITCH

Mirrors the folder BACKING at MOUNTPOINT (foreground, direct I/O, so every read and write
reaches this process instead of the page cache). While the file SWITCH exists, read, write,
fsync, truncate and fallocate answer EIO, as a failing disk does; metadata (stat, statfs,
listing, open, create, unlink) keeps working, so the failure is in the data path only.
Used by tests/it/disk_eio.rs (fusepy over libfuse2: Debian's python3-fusepy, installed by
`.ci/deps test`). Unmount with `umount MOUNTPOINT`; the process then exits.

fusepy 3.0.1 stops its table of operations before libfuse 2.9's `fallocate`, which the edge
uses to reserve its disk tier's files; the table is extended here with the fields that follow
in libfuse's `struct fuse_operations` (poll, write_buf, read_buf, flock, fallocate).
"""

import ctypes
import errno
import os
import sys

import fusepy
from fusepy import FUSE, FuseOSError, Operations


class _Operations(ctypes.Structure):
    _fields_ = fusepy.fuse_operations._fields_ + [
        ("poll", ctypes.c_voidp),
        ("write_buf", ctypes.c_voidp),
        ("read_buf", ctypes.c_voidp),
        ("flock", ctypes.c_voidp),
        (
            "fallocate",
            ctypes.CFUNCTYPE(
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_int,
                fusepy.c_off_t,
                fusepy.c_off_t,
                ctypes.POINTER(fusepy.fuse_file_info),
            ),
        ),
    ]


fusepy.fuse_operations = _Operations


class _Fuse(FUSE):
    def fallocate(self, path, mode, offset, length, fip):
        fh = fip.contents.fh
        return self.operations("fallocate", path.decode(self.encoding), mode, offset, length, fh)


class EioPassthrough(Operations):
    use_ns = True

    def __init__(self, backing, switch):
        self.backing = os.path.realpath(backing)
        self.switch = switch

    def _real(self, path):
        return os.path.join(self.backing, path.lstrip("/"))

    def _fail_if_switched(self):
        if os.path.exists(self.switch):
            raise FuseOSError(errno.EIO)

    # Metadata: always works.
    def access(self, path, mode):
        if not os.access(self._real(path), mode):
            raise FuseOSError(errno.EACCES)

    def getattr(self, path, fh=None):
        st = os.lstat(self._real(path))
        keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks",
                "st_atime_ns", "st_mtime_ns", "st_ctime_ns")
        out = {k: getattr(st, k) for k in keys}
        for k in ("st_atime", "st_mtime", "st_ctime"):
            out[k] = out.pop(k + "_ns")
        return out

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._real(path))

    def statfs(self, path):
        st = os.statvfs(self._real(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
                "f_files", "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(st, k) for k in keys}

    def chmod(self, path, mode):
        os.chmod(self._real(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._real(path), uid, gid)

    def utimens(self, path, times=None):
        os.utime(self._real(path), ns=times)

    def mkdir(self, path, mode):
        os.mkdir(self._real(path), mode)

    def rmdir(self, path):
        os.rmdir(self._real(path))

    def unlink(self, path):
        os.unlink(self._real(path))

    def rename(self, old, new):
        os.rename(self._real(old), self._real(new))

    def open(self, path, flags):
        return os.open(self._real(path), flags & ~os.O_DIRECT)

    def create(self, path, mode, fi=None):
        # fusepy does not pass the open flags here: read-write serves any of them.
        return os.open(self._real(path), os.O_RDWR | os.O_CREAT, mode)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        os.close(fh)

    # Data: fails with EIO while the switch exists.
    def read(self, path, size, offset, fh):
        self._fail_if_switched()
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        self._fail_if_switched()
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        self._fail_if_switched()
        if fh is None:
            os.truncate(self._real(path), length)
        else:
            os.ftruncate(fh, length)

    def fsync(self, path, datasync, fh):
        self._fail_if_switched()
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)

    def fallocate(self, path, mode, offset, length, fh):
        self._fail_if_switched()
        if mode != 0:
            raise FuseOSError(errno.EOPNOTSUPP)
        os.posix_fallocate(fh, offset, length)
        return 0


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: eio_fs.py BACKING MOUNTPOINT SWITCH")
    backing, mountpoint, switch = sys.argv[1:]
    _Fuse(EioPassthrough(backing, switch), mountpoint, foreground=True, direct_io=True,
          fsname="eio_fs")


if __name__ == "__main__":
    main()
