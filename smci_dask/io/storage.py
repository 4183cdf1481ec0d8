"""Storage as a value built from a URL: the only place that touches fsspec directly.

A :class:`Store` is a folder on any fsspec filesystem: a local path,
``file://``, ``memory://``, ``s3://bucket/prefix`` (endpoint and credentials
from the storage options or the environment, as s3fs/botocore read them),
``gs://`` or any other protocol fsspec knows. Production and tests differ
only by the URL.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.registry import known_implementations

from smci_dask.errors import SmciError, StoreError

#: Exceptions that mean "could not talk to the store" (network, DNS, refused).
_UNREACHABLE_NAMES = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionRefusedError",
    "ClientConnectorError",
    "ServerDisconnectedError",
    "gaierror",
}
#: Packages whose exceptions come from talking to a remote store.
_DRIVER_MODULES = ("botocore", "aiobotocore", "s3fs", "gcsfs", "aiohttp")
_TIMEOUT_NAMES = {"ConnectTimeoutError", "ReadTimeoutError", "TimeoutError", "ServerTimeoutError"}
_CREDENTIAL_NAMES = {"NoCredentialsError", "PartialCredentialsError", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


def _split_protocol(url: str) -> tuple[str, str]:
    if "://" in url:
        proto, rest = url.split("://", 1)
        return proto.lower(), rest
    return "file", url


def is_store_failure(exc: BaseException) -> bool:
    """True for errors of the storage system itself (I/O, network, credentials, missing bucket)."""
    if isinstance(exc, OSError | TimeoutError | PermissionError):
        return True
    names = {type(exc).__name__} | {type(c).__name__ for c in (exc.__cause__, exc.__context__) if c is not None}
    from_driver = type(exc).__module__.startswith(_DRIVER_MODULES)
    return bool(names & (_UNREACHABLE_NAMES | _CREDENTIAL_NAMES)) or from_driver


def describe_error(exc: BaseException) -> str:
    """A short cause for an exception raised by a filesystem, walking its chain."""
    seen: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    names = {type(x).__name__ for x in seen}
    text = " ".join(str(x) for x in seen)
    if names & _UNREACHABLE_NAMES or "Could not connect" in text or "Connection refused" in text:
        how = "no answer in time" if names & _TIMEOUT_NAMES else "connection failed"
        return f"cannot reach the store's endpoint ({how}); check the URL, endpoint_url and the network, then run the command again"
    if names & _CREDENTIAL_NAMES or "credentials" in text.lower():
        return "the store refused the credentials (or none were found); set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the storage options"
    if "NoSuchBucket" in text or "bucket does not exist" in text.lower():
        return "the bucket does not exist; create it or fix the URL"
    if isinstance(exc, PermissionError) or "AccessDenied" in text:
        return "permission denied; check the credentials and the bucket policy"
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder ({exc})"
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def store_failures(store: Store) -> Iterator[None]:
    """Report a failure of the store itself that escapes the block (a timeout inside zarr or dask) as one :class:`StoreError`.

    Errors the package raises on purpose pass unchanged, and so does any
    error that is not the store's (none of its chain comes from a remote
    store's driver or names a network, timeout or credential failure); e.g. a
    refresh whose store stopped answering ends with ``store s3://...:
    cannot reach the store's endpoint (no answer in time); ... then run the
    command again``.
    """
    try:
        yield
    except SmciError:
        raise
    except Exception as exc:
        chain: list[BaseException] = []
        e: BaseException | None = exc
        while e is not None and e not in chain:
            chain.append(e)
            e = e.__cause__ or e.__context__
        names = {type(x).__name__ for x in chain}
        from_driver = any(type(x).__module__.startswith(_DRIVER_MODULES) for x in chain)
        if not (from_driver or names & (_UNREACHABLE_NAMES | _TIMEOUT_NAMES | _CREDENTIAL_NAMES)):
            raise  # a local file, a bug: keep its own type and traceback
        raise StoreError(f"store {store.url}: {describe_error(exc)}") from exc


@dataclass(frozen=True)
class Store:
    """A folder on an fsspec filesystem.

    Build it with :meth:`from_url`. ``path`` is the filesystem path of the
    folder (no protocol); ``url`` the full URL.
    """

    protocol: str
    path: str
    storage_options: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # ------------------------------------------------------------ construction
    @classmethod
    def from_url(cls, url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> Store:
        """Store at ``url``; StoreError for an empty URL or an unknown protocol."""
        url = os.fspath(url).strip()
        if not url:
            raise StoreError("store URL is empty; give a path or a URL such as s3://bucket/prefix")
        proto, rest = _split_protocol(url)
        if proto not in known_implementations and proto not in fsspec.available_protocols():
            known = ", ".join(sorted({"file", "memory", "s3", "gs", "az", "http"}))
            raise StoreError(f"store URL {url!r}: unknown protocol {proto!r}; use a local path or one of {known} (any fsspec protocol)")
        opts = dict(storage_options or {})
        if proto in ("file", "local"):
            proto = "file"
            rest = str(Path(rest).expanduser().absolute())
        elif proto == "memory":
            rest = "/" + rest.strip("/")
        else:
            rest = rest.rstrip("/")
            if not rest:
                raise StoreError(f"store URL {url!r} has no bucket or path after {proto}://")
        store = cls(proto, rest, opts)
        try:
            store.fs  # noqa: B018 - instantiate now so a missing driver is reported here
        except ImportError as exc:
            raise StoreError(f"store URL {url!r}: protocol {proto!r} needs a package that is not installed ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - any driver failure becomes one clear line
            raise StoreError(f"store URL {url!r}: cannot open the filesystem: {describe_error(exc)}") from None
        return store

    @property
    def fs_options(self) -> dict[str, Any]:
        """The options every filesystem for this store is built with (also given to zarr).

        Remote filesystems (s3fs, gcsfs, adlfs) cache directory listings per
        instance, and zarr and other processes write through other instances,
        so a cached listing goes stale: ``exists``/``ls``/``glob`` would miss a
        file written elsewhere. Listing caches are off unless the storage
        options turn them on (``use_listings_cache: true``).
        """
        opts = dict(self.storage_options)
        if self.protocol == "file":
            opts.setdefault("auto_mkdir", True)
        elif self.protocol != "memory":
            opts.setdefault("use_listings_cache", False)
        return opts

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem (cached by fsspec per protocol and options)."""
        return fsspec.filesystem(self.protocol, **self.fs_options)

    @property
    def url(self) -> str:
        if self.protocol == "file":
            return self.path
        if self.protocol == "memory":
            return "memory://" + self.path
        return f"{self.protocol}://{self.path}"

    @property
    def is_local(self) -> bool:
        return self.protocol == "file"

    def __str__(self) -> str:
        return self.url

    def child(self, *parts: str) -> Store:
        """The sub-folder ``parts`` of this store."""
        return Store(self.protocol, self.join(*parts), self.storage_options)

    def join(self, *parts: str) -> str:
        """Filesystem path of ``parts`` below this store."""
        clean = [p.strip("/") for p in parts if p and p.strip("/")]
        return posixpath.join(self.path, *clean) if clean else self.path

    def url_of(self, *parts: str) -> str:
        """Full URL of ``parts`` below this store."""
        return self.child(*parts).url

    # ------------------------------------------------------------ checks
    def check_reachable(self) -> None:
        """Talk to the store once; StoreError with the cause if it cannot be reached."""
        try:
            if self.protocol in ("file", "memory"):
                return
            self.fs.invalidate_cache()
            bucket = self.path.split("/", 1)[0]
            self.fs.ls(bucket)
        except FileNotFoundError:
            raise StoreError(
                f"store {self.url}: the bucket {self.path.split('/', 1)[0]!r} does not exist; create it or fix store.root"
            ) from None
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"store {self.url}: {describe_error(exc)}") from None

    # ------------------------------------------------------------ files
    def exists(self, *parts: str) -> bool:
        return bool(self._call("exists", self.join(*parts)))

    def ls(self, *parts: str) -> list[str]:
        """Names (not paths) directly below ``parts``; empty if it does not exist."""
        p = self.join(*parts)
        try:
            self.fs.invalidate_cache(p)
            entries = self.fs.ls(p, detail=False)
        except FileNotFoundError:
            return []
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"store {self.url_of(*parts)}: cannot list: {describe_error(exc)}") from None
        return sorted(posixpath.basename(str(e).rstrip("/")) for e in entries if str(e).rstrip("/") != p.rstrip("/"))

    def glob(self, pattern: str) -> list[str]:
        """Paths relative to the store matching ``pattern`` (fsspec glob)."""
        found = self._call("glob", self.join(pattern))
        root = self.path.rstrip("/") + "/"
        out = []
        for f in found:
            f = str(f)
            if self.protocol == "memory" and not f.startswith("/"):
                f = "/" + f
            out.append(f[len(root) :] if f.startswith(root) else f)
        return sorted(out)

    def makedirs(self, *parts: str) -> None:
        if self.protocol in ("file", "memory"):
            self._call("makedirs", self.join(*parts), exist_ok=True)

    @contextmanager
    def open(self, relpath: str, mode: str = "rb") -> Iterator[IO[Any]]:
        """Open a file below the store (``rb``, ``wb``, ``r``, ``w``)."""
        p = self.join(relpath)
        if "w" in mode:
            self.makedirs(posixpath.dirname(relpath))
        try:
            f = self.fs.open(p, mode)
        except FileNotFoundError:
            raise StoreError(f"store {self.url}: file {relpath!r} does not exist") from None
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"store {self.url}: cannot open {relpath!r}: {describe_error(exc)}") from None
        with f:
            yield f

    def read_bytes(self, relpath: str) -> bytes:
        with self.open(relpath, "rb") as f:
            return f.read()

    def read_text(self, relpath: str) -> str:
        return self.read_bytes(relpath).decode("utf-8")

    def write_bytes(self, relpath: str, data: bytes) -> None:
        """Write a whole file atomically: a reader sees the old or the new content, never a part.

        Object stores make single PUTs atomic; on local disk the bytes go to a
        temporary name in the same folder first and are renamed into place.
        """
        if self.is_local:
            target = Path(self.join(relpath))
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_bytes(data)
                os.replace(tmp, target)
            except OSError as exc:
                with suppress(OSError):
                    tmp.unlink()
                raise StoreError(f"store {self.url}: cannot write {relpath!r}: {describe_error(exc)}") from None
            return
        self.makedirs(posixpath.dirname(relpath))
        self._call("pipe_file", self.join(relpath), data)

    def write_text(self, relpath: str, text: str) -> None:
        self.write_bytes(relpath, text.encode("utf-8"))

    def put_file(self, local_path: str | os.PathLike[str], relpath: str) -> None:
        """Copy a local file into the store (atomically, like :meth:`write_bytes`)."""
        self.write_bytes(relpath, Path(local_path).read_bytes())

    def get_file(self, relpath: str, local_path: str | os.PathLike[str]) -> Path:
        """Copy a file of the store to a local path (for libraries that need a real file)."""
        out = Path(local_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self.is_local:
                shutil.copyfile(self.join(relpath), out)
            else:
                self.fs.get_file(self.join(relpath), str(out))
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"store {self.url}: cannot copy {relpath!r} to {str(out)!r}: {describe_error(exc)}") from None
        return out

    def rm(self, *parts: str, recursive: bool = True) -> None:
        """Remove a file or (recursively) a folder; nothing happens if it does not exist."""
        if not self.exists(*parts):
            return
        try:
            self.fs.rm(self.join(*parts), recursive=recursive)
        except FileNotFoundError:
            pass  # removed by someone else in between
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"store {self.url}: cannot remove {self.join(*parts)!r}: {describe_error(exc)}") from None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.fs, method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            target = args[0] if args else self.path
            raise StoreError(f"store {self.url}: {method} {target!r} failed: {describe_error(exc)}") from None


def store_from_config(cfg: Any, *parts: str) -> Store:
    """The store ``cfg.store.root`` (+ ``parts``) with the configured storage options."""
    root = Store.from_url(cfg.store.root, cfg.store.storage_options)
    return root.child(*parts) if parts else root
