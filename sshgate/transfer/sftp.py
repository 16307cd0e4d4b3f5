"""The gate's SFTP server: asyncssh's SFTP protocol on top of :class:`~sshgate.transfer.podfs.PodFiles`.

It serves ``sftp``, OpenSSH 9's ``scp`` (SFTP mode) and, through asyncssh's scp server on the same
object, legacy ``scp -O``. Every operation that touches the container:

1. resolves its path against the container's working directory and normalises it as text
   (``/data/../etc`` is ``/etc``), the same form the policy matches and the container receives;
2. asks the policy: ``file_read`` for stat, listing, readlink and downloads, ``file_write`` for
   uploads, mkdir, rmdir, remove, rename (both paths), symlink and attribute changes; a denial is
   SFTP "permission denied";
3. runs as one exec (a download or upload is one exec for all of its reads or writes);
4. is audited as a ``file_op`` event: operation, path, result and, for transfers, bytes and the
   SHA-256 of the bytes that crossed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import posixpath
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncssh
from asyncssh import FXF_APPEND, FXF_CREAT, FXF_EXCL, FXF_READ, FXF_TRUNC, FXF_WRITE

from sshgate.identity import Identity
from sshgate.kube import KubeError
from sshgate.policy import AccessRequest, Action, Policy
from sshgate.transfer.podfs import FileAttrs, PodFiles, ReadStream, ToolsMissing, WriteStream

T = TypeVar("T")

#: ``emit(event, **fields)``, e.g. :meth:`sshgate.audit.AuditLog.emit` with the session's fields bound.
Emit = Callable[..., None]


@dataclass
class TransferStats:
    """What one SFTP or scp session moved, for its ``session_end`` event."""

    bytes_in: int = 0
    bytes_out: int = 0
    operations: int = 0
    denied: int = 0


@dataclass(frozen=True, slots=True)
class TransferContext:
    """Everything the SFTP server needs to know about the session it serves."""

    files: PodFiles
    policy: Policy
    identity: Identity
    labels: Mapping[str, str]
    #: The container's working directory: relative paths start there (as for ``ssh gate cmd``).
    cwd: str
    emit: Emit
    #: Called whenever the client asks for something: the session's idle timeout starts again.
    touch: Callable[[], None] = lambda: None


@dataclass
class _Handle:
    path: str
    op: str
    stream: ReadStream | WriteStream
    rule_id: str | None
    digest: Any = field(default_factory=hashlib.sha256)
    size: int = 0
    #: Attributes set through the handle while writing, applied after the data is complete.
    attrs: asyncssh.SFTPAttrs | None = None
    #: Why a read or write failed: the transfer is audited as an error.
    error: str | None = None


def sftp_attrs(attrs: FileAttrs) -> asyncssh.SFTPAttrs:
    """The SFTP form of a container file's attributes."""
    return asyncssh.SFTPAttrs(
        type=_file_type(attrs.mode),
        size=attrs.size,
        uid=attrs.uid,
        gid=attrs.gid,
        owner=attrs.user,
        group=attrs.group,
        permissions=attrs.mode,
        atime=attrs.atime,
        mtime=attrs.mtime,
        nlink=attrs.nlink,
    )


def _file_type(mode: int) -> int:
    if stat.S_ISDIR(mode):
        return asyncssh.FILEXFER_TYPE_DIRECTORY
    if stat.S_ISREG(mode):
        return asyncssh.FILEXFER_TYPE_REGULAR
    if stat.S_ISLNK(mode):
        return asyncssh.FILEXFER_TYPE_SYMLINK
    return asyncssh.FILEXFER_TYPE_SPECIAL


def _reason(exc: Exception) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def resolve_path(raw: bytes, cwd: str) -> str:
    """The absolute path a client's path means in the container, normalised as text the way the
    policy normalises it (``.``, ``..`` and doubled ``/``), so that what is checked is what is used."""
    text = _decode(raw) or "."
    if not text.startswith("/"):
        text = posixpath.join(cwd, text)
    return "/" + posixpath.normpath(text).lstrip("/")


def _decode(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise OSError(errno.EILSEQ, "file names must be UTF-8 to reach a pod through Kubernetes") from None
    if "\0" in text:
        raise OSError(errno.EINVAL, "file names cannot contain NUL")
    return text


class PodSFTPServer(asyncssh.SFTPServer):
    """One SFTP (or scp) session in one container. ``on_exit`` runs when the session ends normally."""

    def __init__(
        self, chan: asyncssh.SSHServerChannel[bytes], context: TransferContext, on_exit: Callable[[], None]
    ) -> None:
        super().__init__(chan)
        self._ctx = context
        self._files = context.files
        self._on_exit = on_exit
        self.stats = TransferStats()
        self._names: dict[tuple[str, int], str] = {}
        self._explained: set[str] = set()

    # -- paths, policy, audit ------------------------------------------------------------------

    def path(self, raw: bytes) -> str:
        return resolve_path(raw, self._ctx.cwd)

    def _allow(self, op: str, action: Action, path: str) -> str | None:
        """Ask the policy; PermissionError (audited) when denied. Returns the allowing rule's id."""
        ctx = self._ctx
        decision = ctx.policy.evaluate(
            AccessRequest(
                identity=ctx.identity,
                namespace=self._files.namespace,
                pod=self._files.pod,
                container=self._files.container,
                pod_labels=ctx.labels,
                action=action,
                path=path,
            )
        )
        if not decision.allowed:
            self.stats.denied += 1
            self._audit(op, path, "denied", rule_id=decision.rule_id, reason=decision.reason)
            self._explain(decision.reason)
            raise PermissionError(errno.EACCES, decision.reason, path)
        return decision.rule_id

    def _explain(self, message: str) -> None:
        """Say on the session's stderr what an SFTP status code cannot: sftp and scp print it as is."""
        if message not in self._explained:
            self._explained.add(message)
            with contextlib.suppress(OSError, asyncssh.Error):
                self.channel.write_stderr(f"sshgate: {message}\n".encode())

    def _failure(self, exc: Exception, path: str) -> Exception:
        """The error the client gets. OSErrors keep their errno (asyncssh maps it to a status code);
        what a status code cannot say (a missing tool, a Kubernetes error) is also explained on stderr."""
        if isinstance(exc, OSError) and exc.errno not in (errno.EIO, errno.EOPNOTSUPP):
            return exc
        self._explain(_reason(exc))
        if isinstance(exc, KubeError):
            return OSError(errno.EACCES if exc.kind == "forbidden" else errno.EIO, str(exc), path)
        if isinstance(exc, ToolsMissing):
            return asyncssh.SFTPFailure(str(exc))
        return exc

    def _audit(self, op: str, path: str, result: str, **fields: Any) -> None:
        self._ctx.touch()
        self.stats.operations += 1
        self._ctx.emit("file_op", op=op, path=path, result=result, **fields)

    async def _do(
        self, op: str, action: Action, path: str, work: Callable[[], Awaitable[T]], **fields: Any
    ) -> T:
        """Check, run and audit one operation; ``work()`` does it once the policy allowed it."""
        rule_id = self._allow(op, action, path)
        try:
            result = await work()
        except (OSError, ToolsMissing, KubeError) as exc:
            self._audit(op, path, "error", rule_id=rule_id, error=_reason(exc), **fields)
            raise self._failure(exc, path) from None
        self._audit(op, path, "ok", rule_id=rule_id, **fields)
        return result

    # -- SFTPServer ----------------------------------------------------------------------------

    # ls -l names owners as the container knows them (from the listing), not as the gate's host does.
    def format_user(self, uid: int | None) -> str:
        return "" if uid is None else self._names.get(("u", uid), str(uid))

    def format_group(self, gid: int | None) -> str:
        return "" if gid is None else self._names.get(("g", gid), str(gid))

    def realpath(self, path: bytes) -> bytes:
        # As text, without the container: it reveals nothing and saves an exec per "cd".
        return self.path(path).encode()

    async def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        where = self.path(path)
        return sftp_attrs(await self._do("stat", Action.FILE_READ, where, lambda: self._files.stat(where)))

    async def lstat(self, path: bytes) -> asyncssh.SFTPAttrs:
        where = self.path(path)
        attrs = await self._do(
            "lstat", Action.FILE_READ, where, lambda: self._files.stat(where, follow=False)
        )
        return sftp_attrs(attrs)

    async def fstat(self, file_obj: object) -> asyncssh.SFTPAttrs:
        assert isinstance(file_obj, _Handle)
        return sftp_attrs(await self._files.stat(file_obj.path))

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        where = self.path(path)
        entries = await self._do("list", Action.FILE_READ, where, lambda: self._files.listdir(where))
        for name, attrs in entries:
            self._names[("u", attrs.uid)] = attrs.user
            self._names[("g", attrs.gid)] = attrs.group
            yield asyncssh.SFTPName(name, attrs=sftp_attrs(attrs))

    async def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        where = self.path(path)
        await self._do("mkdir", Action.FILE_WRITE, where, lambda: self._files.mkdir(where, attrs.permissions))

    async def rmdir(self, path: bytes) -> None:
        where = self.path(path)
        await self._do("rmdir", Action.FILE_WRITE, where, lambda: self._files.rmdir(where))

    async def remove(self, path: bytes) -> None:
        where = self.path(path)
        await self._do("remove", Action.FILE_WRITE, where, lambda: self._files.remove(where))

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._rename(oldpath, newpath, overwrite=False)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._rename(oldpath, newpath, overwrite=True)

    async def _rename(self, oldpath: bytes, newpath: bytes, *, overwrite: bool) -> None:
        old, new = self.path(oldpath), self.path(newpath)
        self._allow("rename", Action.FILE_WRITE, new)
        await self._do(
            "rename",
            Action.FILE_WRITE,
            old,
            lambda: self._files.rename(old, new, overwrite=overwrite),
            to=new,
        )

    async def readlink(self, path: bytes) -> bytes:
        where = self.path(path)
        return await self._do("readlink", Action.FILE_READ, where, lambda: self._files.readlink(where))

    async def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        # The link's target is stored as given (it may be relative); only the new link is written.
        target, where = _decode(oldpath), self.path(newpath)
        await self._do(
            "symlink", Action.FILE_WRITE, where, lambda: self._files.symlink(target, where), target=target
        )

    async def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        where = self.path(path)
        await self._do("setstat", Action.FILE_WRITE, where, lambda: self._set_attrs(where, attrs))

    async def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        assert isinstance(file_obj, _Handle)
        if isinstance(file_obj.stream, WriteStream):
            file_obj.attrs = attrs  # applied once the data is written, or a later write would undo it
            return
        await self._do(
            "setstat", Action.FILE_WRITE, file_obj.path, lambda: self._set_attrs(file_obj.path, attrs)
        )

    async def _set_attrs(self, path: str, attrs: asyncssh.SFTPAttrs) -> None:
        await self._files.set_attrs(
            path,
            mode=attrs.permissions,
            uid=attrs.uid,
            gid=attrs.gid,
            size=attrs.size,
            atime=attrs.atime,
            mtime=attrs.mtime,
        )

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> _Handle:
        where = self.path(path)
        if pflags & FXF_READ and pflags & FXF_WRITE:
            raise asyncssh.SFTPOpUnsupported(
                "files cannot be opened for reading and writing at once in a pod"
            )
        if pflags & FXF_WRITE:
            op, action = "upload", Action.FILE_WRITE
            stream: ReadStream | WriteStream = WriteStream(
                self._files,
                where,
                create=bool(pflags & FXF_CREAT),
                truncate=bool(pflags & FXF_TRUNC),
                append=bool(pflags & FXF_APPEND),
                exclusive=bool(pflags & FXF_EXCL),
                mode=attrs.permissions,
            )
        else:
            op, action = "download", Action.FILE_READ
            stream = ReadStream(self._files, where)
        rule_id = self._allow(op, action, where)
        try:
            await stream.open()
        except (OSError, ToolsMissing, KubeError) as exc:
            self._audit(op, where, "error", rule_id=rule_id, error=_reason(exc), bytes=0)
            raise self._failure(exc, where) from None
        return _Handle(where, op, stream, rule_id)

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        assert isinstance(file_obj, _Handle) and isinstance(file_obj.stream, ReadStream)
        try:
            data = await file_obj.stream.read(offset, size)
        except (OSError, ToolsMissing, KubeError) as exc:
            file_obj.error = _reason(exc)
            raise self._failure(exc, file_obj.path) from None
        file_obj.digest.update(data)
        file_obj.size += len(data)
        self.stats.bytes_out += len(data)
        self._ctx.touch()
        return data

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        assert isinstance(file_obj, _Handle)
        if not isinstance(file_obj.stream, WriteStream):
            raise OSError(errno.EBADF, "the file was opened for reading", file_obj.path)
        try:
            await file_obj.stream.write(offset, data)
        except (OSError, ToolsMissing, KubeError) as exc:
            file_obj.error = _reason(exc)
            raise self._failure(exc, file_obj.path) from None
        file_obj.digest.update(data)
        file_obj.size += len(data)
        self.stats.bytes_in += len(data)
        self._ctx.touch()
        return len(data)

    async def close(self, file_obj: object) -> None:
        assert isinstance(file_obj, _Handle)
        stream = file_obj.stream
        fields = {"rule_id": file_obj.rule_id, "bytes": file_obj.size, "sha256": file_obj.digest.hexdigest()}
        try:
            if isinstance(stream, WriteStream) and file_obj.error is None:
                await stream.finish()
                if file_obj.attrs is not None:
                    await self._set_attrs(file_obj.path, file_obj.attrs)
        except (OSError, ToolsMissing, KubeError) as exc:
            file_obj.error = _reason(exc)
            raise self._failure(exc, file_obj.path) from None
        finally:
            await stream.close()
            if file_obj.error is None:
                self._audit(file_obj.op, file_obj.path, "ok", **fields)
            else:
                self._audit(file_obj.op, file_obj.path, "error", error=file_obj.error, **fields)

    def exit(self) -> None:
        # asyncssh closes the channel right after this without an exit status, which makes OpenSSH 9's
        # scp exit 1 although the copy worked: the gate sends the status here, first.
        self._on_exit()
