"""File operations inside a container, each one a Kubernetes exec of a constant POSIX sh script.

Nothing is installed in the image: the scripts use ``sh``, ``cat``, ``tail``, ``stat``, ``mkdir``,
``rmdir``, ``rm``, ``mv``, ``ln``, ``readlink``, ``chmod``, ``chown``, ``truncate``, ``touch`` and
``dd``, which busybox and GNU coreutils both provide. Paths and numbers are passed as positional
arguments (``"$1"``), never put into the script text, so no file name can change what runs.

Errors come back as :class:`OSError` with the errno that the message in the container names (the
scripts set ``LC_ALL=C`` so messages are the C library's), which asyncssh's SFTP server turns into
the matching SFTP status code. A container without ``sh`` raises :class:`ToolsMissing`.

Transfers stream: :class:`ReadStream` and :class:`WriteStream` hold one exec each, and only the data
of the request at hand is in memory; the exec stream's flow control holds the other side back.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from sshgate.identity import Identity
from sshgate.kube import ExecStream, KubeClient, KubeError

#: Environment and helpers shared by every script: ``fail MESSAGE`` prints it and exits 1.
_PRELUDE = "export LC_ALL=C; fail() { printf '%s\\n' \"$1\" >&2; exit 1; }; "
#: ``stat`` format: raw mode (hex), size, uid, gid, atime, mtime, links, user name, group name.
_STAT_FORMAT = "%f %s %u %g %X %Y %h %U %G"
#: Marks that a transfer's file was opened; everything after it on stdout is file data.
_READY = b"X"
#: Tools every file transfer needs; the others (dd, truncate, chown, touch, ln, readlink) only some.
_CORE_TOOLS = ("cat", "tail", "stat", "mkdir", "rmdir", "rm", "mv", "chmod")
#: stderr kept per exec, enough for any error message.
_STDERR_LIMIT = 16 * 1024
#: A forward jump in a download up to this size is read and skipped instead of starting a new exec.
_SKIP_LIMIT = 1024 * 1024

_ERRNO_TEXT = (
    ("No such file", errno.ENOENT),
    ("Permission denied", errno.EACCES),
    ("Operation not permitted", errno.EPERM),
    ("File exists", errno.EEXIST),
    ("Not a directory", errno.ENOTDIR),
    ("Is a directory", errno.EISDIR),
    ("Directory not empty", errno.ENOTEMPTY),
    ("Read-only file system", errno.EROFS),
    ("No space left", errno.ENOSPC),
    ("Disk quota exceeded", errno.EDQUOT),
    ("File name too long", errno.ENAMETOOLONG),
    ("Too many levels of symbolic links", errno.ELOOP),
    ("Invalid argument", errno.EINVAL),
)

_SH_MISSING = (
    "this container has no POSIX shell (sh): file transfer runs sh, cat and stat in the container "
    "(busybox or coreutils); use an image that has them, or kubectl debug with an ephemeral container"
)


_NO_STDIN_EOF = (
    "uploads need Kubernetes 1.30 or later: this cluster cannot pass end-of-file to a command in the pod"
)


class ToolsMissing(Exception):
    """The container lacks ``sh`` (or another tool a script needs); ``str()`` says so in one line."""


@dataclass(frozen=True, slots=True)
class FileAttrs:
    """What ``stat`` reports about one file."""

    mode: int
    size: int
    uid: int
    gid: int
    atime: int
    mtime: int
    nlink: int
    user: str
    group: str

    @classmethod
    def parse(cls, line: bytes) -> FileAttrs:
        fields = line.decode("utf-8", "replace").split()
        if len(fields) != 9:
            raise OSError(errno.EIO, f"unexpected stat output {line[:80]!r}")
        mode, size, uid, gid, atime, mtime, nlink = (
            int(f, 16 if i == 0 else 10) for i, f in enumerate(fields[:7])
        )
        return cls(mode, size, uid, gid, atime, mtime, nlink, fields[7], fields[8])


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_code: int
    stdout: bytes
    stderr: str


def os_error(stderr: str, path: str) -> OSError:
    """The OSError a script's error message means; EIO (SFTP "failure") when it is not recognised."""
    message = " ".join(stderr.split()) or "the operation failed in the container"
    for text, code in _ERRNO_TEXT:
        if text in message:
            return OSError(code, os.strerror(code), path)
    return OSError(errno.EIO, message, path)


def _missing_tool(message: str | None) -> bool:
    return message is not None and "executable file not found" in message


class PodFiles:
    """The files of one container, as seen by ``identity`` (every exec impersonates them)."""

    def __init__(
        self, kube: KubeClient, namespace: str, pod: str, container: str, identity: Identity
    ) -> None:
        self._kube = kube
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self._identity = identity
        #: Whether execs can end their stdin (v5): known after the first exec, needed for uploads.
        self.stdin_eof: bool | None = None

    def exec(
        self, script: str, args: Sequence[str], *, stdin: bool = False
    ) -> contextlib.AbstractAsyncContextManager[ExecStream]:
        """Start ``sh -c SCRIPT sh ARGS...`` in the container (``sh`` looked up in its PATH)."""
        argv = ["sh", "-c", _PRELUDE + script, "sh", *args]
        return self._kube.exec(
            self.namespace, self.pod, self.container, argv, tty=False, stdin=stdin, identity=self._identity
        )

    async def run(self, script: str, *args: str) -> CommandResult:
        """Run a script to its end and return its output (meant for small outputs)."""
        stdout = bytearray()
        stderr = bytearray()
        try:
            async with self.exec(script, args) as stream:
                self.stdin_eof = stream.supports_stdin_eof
                while (frame := await stream.read()) is not None:
                    channel, data = frame
                    if channel == 1:
                        stdout += data
                    elif len(stderr) < _STDERR_LIMIT:
                        stderr += data
                result = await stream.result()
        except KubeError as exc:
            if _missing_tool(str(exc)):
                raise ToolsMissing(_SH_MISSING) from None
            raise
        if result.reason not in ("Success", "NonZeroExitCode"):
            if _missing_tool(result.message):
                raise ToolsMissing(_SH_MISSING)
            raise OSError(errno.EIO, result.message or result.reason)
        return CommandResult(result.exit_code, bytes(stdout), stderr.decode("utf-8", "replace"))

    async def _check(self, path: str, script: str, *args: str) -> bytes:
        result = await self.run(script, *args)
        if result.exit_code != 0:
            if "not found" in result.stderr and ": " in result.stderr and "No such file" not in result.stderr:
                raise ToolsMissing(
                    f"a tool file transfer needs is missing in this container: {result.stderr.strip()}"
                )
            raise os_error(result.stderr, path)
        return result.stdout

    async def working_dir(self) -> str:
        """The directory execs start in (the container's working directory).

        Also checks that the tools every transfer needs are there, so that a container without them
        is refused up front with one clear line rather than failing operation by operation.
        """
        result = await self.run(
            'm=; for t; do command -v "$t" >/dev/null 2>&1 || m="$m $t"; done; printf "%s\\n" "$m"; pwd',
            *_CORE_TOOLS,
        )
        missing, _, cwd = result.stdout.decode("utf-8", "replace").partition("\n")
        if result.exit_code != 0 or missing.strip():
            raise ToolsMissing(
                f"this container lacks{missing or ' a working sh'}: file transfer needs {', '.join(_CORE_TOOLS)} "
                "(busybox or coreutils) in the image"
            )
        cwd = cwd.rstrip("\n")
        return cwd if cwd.startswith("/") else "/"

    async def stat(self, path: str, *, follow: bool = True) -> FileAttrs:
        """``stat`` (``follow``) or ``lstat`` of one path."""
        flags = "-L " if follow else ""
        out = await self._check(
            path,
            f'[ -e "$1" ] || [ -L "$1" ] || fail "No such file or directory"; exec stat {flags}-c "$2" -- "$1"',
            path,
            _STAT_FORMAT,
        )
        return FileAttrs.parse(out.strip())

    async def listdir(self, path: str) -> list[tuple[bytes, FileAttrs]]:
        """Every entry of a directory but ``.`` and ``..``, with its lstat attributes, in one exec."""
        out = await self._check(
            path,
            '[ -e "$1" ] || fail "No such file or directory"; [ -d "$1" ] || fail "Not a directory"; '
            '{ [ -r "$1" ] && [ -x "$1" ]; } || fail "Permission denied"; cd -- "$1" || exit 1; f=$2; set --; '
            "for n in .* *; do case $n in .|..) continue;; esac; "
            '{ [ -e "$n" ] || [ -L "$n" ]; } && set -- "$@" "$n"; done; '
            '[ $# -eq 0 ] && exit 0; printf \'%s\\0\' "$@"; printf \'\\0\'; exec stat -c "$f" -- "$@"',
            path,
            _STAT_FORMAT,
        )
        if not out:
            return []
        names_part, _, stats_part = out.partition(b"\0\0")
        names = names_part.split(b"\0")
        lines = stats_part.splitlines()
        if len(lines) != len(names):
            # An entry vanished between listing and stat: fall back to one stat each.
            entries = []
            for name in names:
                with contextlib.suppress(OSError):
                    full = path.rstrip("/") + "/" + name.decode("utf-8", "surrogateescape")
                    entries.append((name, await self.stat(full, follow=False)))
            return entries
        return [(name, FileAttrs.parse(line)) for name, line in zip(names, lines, strict=True)]

    async def mkdir(self, path: str, mode: int | None) -> None:
        await self._check(
            path, 'mkdir -m "$2" -- "$1"', path, f"{(mode if mode is not None else 0o777) & 0o7777:o}"
        )

    async def rmdir(self, path: str) -> None:
        await self._check(path, 'rmdir -- "$1"', path)

    async def remove(self, path: str) -> None:
        await self._check(
            path,
            '{ [ -d "$1" ] && ! [ -L "$1" ]; } && fail "Is a directory"; '
            '{ [ -e "$1" ] || [ -L "$1" ]; } || fail "No such file or directory"; exec rm -f -- "$1"',
            path,
        )

    async def rename(self, old: str, new: str, *, overwrite: bool) -> None:
        """Rename ``old`` to ``new``; without ``overwrite`` an existing ``new`` is an error (SFTP v3)."""
        await self._check(
            old,
            '{ [ -e "$1" ] || [ -L "$1" ]; } || fail "No such file or directory"; '
            '{ [ "$3" = no ] && { [ -e "$2" ] || [ -L "$2" ]; }; } && fail "File exists"; '
            # mv would move into an existing directory; rename(2) replaces only an empty one.
            '{ [ -d "$2" ] && ! [ -L "$2" ]; } && { rmdir -- "$2" 2>/dev/null || fail "Directory not empty"; }; '
            'exec mv -f -- "$1" "$2"',
            old,
            new,
            "yes" if overwrite else "no",
        )

    async def readlink(self, path: str) -> bytes:
        out = await self._check(
            path,
            '{ [ -e "$1" ] || [ -L "$1" ]; } || fail "No such file or directory"; '
            '[ -L "$1" ] || fail "Invalid argument"; exec readlink -- "$1"',
            path,
        )
        return out[:-1] if out.endswith(b"\n") else out  # readlink ends the target with one newline

    async def symlink(self, target: str, path: str) -> None:
        await self._check(path, 'exec ln -s -- "$1" "$2"', target, path)

    async def set_attrs(
        self,
        path: str,
        *,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        size: int | None = None,
        atime: int | None = None,
        mtime: int | None = None,
    ) -> None:
        """Change what is given: ``chown``, ``truncate``, ``chmod``, then the times (UTC, ``touch -t``)."""
        owner = ("" if uid is None else str(uid)) + ("" if gid is None else f":{gid}")
        await self._check(
            path,
            '[ -e "$1" ] || fail "No such file or directory"; '
            '[ -z "$2" ] || chown -- "$2" "$1" || exit 1; '
            '[ -z "$3" ] || truncate -s "$3" -- "$1" || exit 1; '
            '[ -z "$4" ] || chmod -- "$4" "$1" || exit 1; '
            '[ -z "$5" ] || TZ=UTC0 touch -a -t "$5" -- "$1" || exit 1; '
            '[ -z "$6" ] || TZ=UTC0 touch -m -t "$6" -- "$1" || exit 1',
            path,
            owner,
            "" if size is None else str(size),
            "" if mode is None else f"{mode & 0o7777:o}",
            _touch_time(atime),
            _touch_time(mtime),
        )


def _touch_time(epoch: int | None) -> str:
    if epoch is None:
        return ""
    return time.strftime("%Y%m%d%H%M.%S", time.gmtime(epoch))


class _Transfer:
    """One exec carrying a file's bytes; subclasses say which way."""

    def __init__(self, files: PodFiles, path: str) -> None:
        self._files = files
        self.path = path
        self._stack = contextlib.AsyncExitStack()
        self._stream: ExecStream | None = None
        self._stderr = bytearray()
        self._pending = b""

    async def _start(self, script: str, args: Sequence[str], *, stdin: bool) -> None:
        try:
            self._stream = await self._stack.enter_async_context(self._files.exec(script, args, stdin=stdin))
        except KubeError as exc:
            await self._stack.aclose()
            if _missing_tool(str(exc)):
                raise ToolsMissing(_SH_MISSING) from None
            raise
        # The script prints the marker once the file is open: an error before it is the open's error.
        while (frame := await self._next()) is not None:
            if frame:
                if frame[:1] == _READY:
                    self._pending = frame[1:]
                    return
                break
        await self._fail()

    async def _next(self) -> bytes | None:
        """The next stdout bytes (maybe empty), keeping stderr aside; None at the end of the exec."""
        assert self._stream is not None
        frame = await self._stream.read()
        if frame is None:
            return None
        channel, data = frame
        if channel == 1:
            return data
        if len(self._stderr) < _STDERR_LIMIT:
            self._stderr += data
        return b""

    async def _fail(self) -> None:
        """The exec ended without doing its job: raise the error it reported."""
        assert self._stream is not None
        result = await self._stream.result()
        await self._stack.aclose()
        self._stream = None
        if _missing_tool(result.message):
            raise ToolsMissing(_SH_MISSING)
        text = self._stderr.decode("utf-8", "replace") or (result.message or "")
        raise os_error(text, self.path)

    async def close(self) -> None:
        """End the exec (if still running). Safe to call twice."""
        self._stream = None
        await self._stack.aclose()


class ReadStream(_Transfer):
    """A file being downloaded: sequential reads stream through one ``cat`` (or ``tail -c +N``)."""

    _SCRIPT = (
        '[ -e "$1" ] || fail "No such file or directory"; [ -d "$1" ] && fail "Is a directory"; '
        'exec 3<"$1" || exit 1; printf X; '
        'if [ "$2" -gt 0 ]; then exec tail -c "+$(($2 + 1))" <&3; else exec cat <&3; fi'
    )

    def __init__(self, files: PodFiles, path: str) -> None:
        super().__init__(files, path)
        self.position = 0
        # Frames as they came (up to 256 KiB each), the first one read from ``_head`` on: a read takes
        # its bytes without moving the rest of the buffer.
        self._chunks: deque[bytes] = deque()
        self._head = 0
        self._buffered = 0
        self._eof = False

    async def open(self, offset: int = 0) -> None:
        """Start reading at ``offset``; raises the open's OSError (missing file, permission...)."""
        await self.close()
        self._chunks.clear()
        self._head = self._buffered = 0
        self._eof = False
        self.position = offset
        await self._start(self._SCRIPT, [self.path, str(offset)], stdin=False)
        self._add(self._pending)

    async def read(self, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` (fewer only at the end of the file)."""
        if offset != self.position:
            gap = offset - self.position
            if 0 < gap <= _SKIP_LIMIT and await self._fill(gap) >= gap:
                self._take(gap)
                self.position = offset
            else:
                await self.open(offset)
        await self._fill(size)
        data = self._take(size)
        self.position += len(data)
        return data

    def _add(self, chunk: bytes) -> None:
        if chunk:
            self._chunks.append(chunk)
            self._buffered += len(chunk)

    def _take(self, size: int) -> bytes:
        pieces = []
        while size and self._chunks:
            chunk = self._chunks[0]
            end = min(len(chunk), self._head + size)
            pieces.append(memoryview(chunk)[self._head : end])
            size -= end - self._head
            self._buffered -= end - self._head
            if end == len(chunk):
                self._chunks.popleft()
                self._head = 0
            else:
                self._head = end
        return b"".join(pieces)

    async def _fill(self, size: int) -> int:
        while self._buffered < size and not self._eof:
            chunk = await self._next() if self._stream is not None else None
            if chunk is None:
                self._eof = True
                if self._stream is not None:
                    result = await self._stream.result()
                    if result.exit_code != 0:
                        await self._fail()
            else:
                self._add(chunk)
        return self._buffered


class WriteStream(_Transfer):
    """A file being uploaded: sequential writes stream into one ``cat``; a jump starts a ``dd``."""

    _SCRIPT = (
        '{ [ "$5" = excl ] && { [ -e "$1" ] || [ -L "$1" ]; }; } && fail "File exists"; '
        '[ -d "$1" ] && fail "Is a directory"; '
        'new=; if ! [ -e "$1" ]; then [ "$2" = nocreate ] && fail "No such file or directory"; new=1; fi; '
        'case $3 in trunc) exec 3>"$1";; append) exec 3>>"$1";; *) exec 3<>"$1";; esac || exit 1; '
        '{ [ -n "$new" ] && [ -n "$6" ]; } && { chmod -- "$6" "$1" || exit 1; }; printf X; '
        'if [ "$4" -gt 0 ]; then exec 3>&-; '
        'exec dd of="$1" bs=65536 seek="$4" oflag=seek_bytes conv=notrunc 2>/dev/null; fi; exec cat >&3'
    )

    def __init__(
        self,
        files: PodFiles,
        path: str,
        *,
        create: bool,
        truncate: bool,
        append: bool,
        exclusive: bool,
        mode: int | None,
    ) -> None:
        super().__init__(files, path)
        self._create = create
        self._truncate = truncate
        self._append = append
        self._exclusive = exclusive
        self._mode = mode
        self.position = 0

    async def open(self, offset: int = 0) -> None:
        """Open the file (creating or truncating it as asked) with the first write at ``offset``."""
        if self._stream is not None:
            await self.finish()
        if self._files.stdin_eof is False:
            raise OSError(errno.EOPNOTSUPP, _NO_STDIN_EOF, self.path)
        mode = "trunc" if self._truncate else "append" if self._append else "update"
        args = [
            self.path,
            "create" if self._create else "nocreate",
            mode,
            str(0 if self._append else offset),
            "excl" if self._exclusive else "",
            "" if self._mode is None else f"{self._mode & 0o7777:o}",
        ]
        await self._start(self._SCRIPT, args, stdin=True)
        # Later opens of the same handle (a jump) must not truncate or refuse what this one made.
        self._truncate = self._exclusive = False
        self._create = True
        self.position = offset

    async def write(self, offset: int, data: bytes) -> None:
        if self._stream is None or (offset != self.position and not self._append):
            await self.open(offset)
        assert self._stream is not None
        await self._stream.send_stdin(data)
        self.position += len(data)

    async def finish(self) -> None:
        """Close the file's stdin and wait for the exec: raises what went wrong writing (e.g. ENOSPC)."""
        if self._stream is None:
            return
        await self._stream.close_stdin()
        while await self._next() is not None:
            pass
        result = await self._stream.result()
        if result.exit_code != 0:
            await self._fail()
        await self.close()
