"""The runtime of azfed-helper's single-file build (``packaging/pyz/build.py`` writes the archive).

azfed_helper and its light dependencies (platformdirs, filelock ...) are imported straight from
the archive by the interpreter's zipimport, from bytecode compiled at build time: nothing is
unpacked, so a no-op ``write`` costs little more than the interpreter's own start. Compiled
extensions cannot be imported from a zip: the heavy dependencies (those with compiled code, such
as cryptography, certifi whose CA bundle OpenSSL opens by path, and what needs them: google-auth,
msal, requests ...) travel as one nested archive that is unpacked only when one of them is first
imported, into ``<cache>/azfed-helper-pyz-<uid>/<key>/``:

- ``<cache>`` is ``$AZFED_PYZ_CACHE``, else systemd's ``$CACHE_DIRECTORY`` (``CacheDirectory=``),
  else ``$XDG_RUNTIME_DIR``; never the home directory, which a system user may not have.
- ``<key>`` names the nested archive's content (version and hash), so builds never mix.
- Another local user must not be able to plant code there: ``<cache>`` must belong to us or root
  and be writable by nobody else unless sticky; our directory in it is created 0700 and checked
  (owner, mode, not a symlink); an extraction is built under a temporary name and renamed into
  place only when complete, so a directory under its final name is always whole.
"""

from __future__ import annotations

import os
import sys

# Not typing.TYPE_CHECKING: importing typing costs milliseconds on every start; mypy honours it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from zipfile import ZipFile, ZipInfo

# Filled in by packaging/pyz/build.py.
BUILT_FOR = "@BUILT_FOR@"  # sys.implementation.cache_tag of the interpreter it was built with
PLATFORM = "@PLATFORM@"  # sys.platform and machine, e.g. linux-x86_64
PYTHON = "@PYTHON@"  # the interpreter the archive's header starts
_HEAVY_NAMES = "@HEAVY_NAMES@"  # top-level names unpacked on first import, space-separated
HEAVY_KEY = "@HEAVY_KEY@"  # <version>-<tag>-<sha256 prefix of the nested archive>
HEAVY_SHA256 = "@HEAVY_SHA256@"

HEAVY_MEMBER = "_azfed_heavy.zip"
CACHE_VARIABLES = ("AZFED_PYZ_CACHE", "CACHE_DIRECTORY", "XDG_RUNTIME_DIR")
STALE_SECONDS = 3600  # an unfinished extraction this old belongs to a process that died
EXIT_USAGE = 2
HEAVY_NAMES = frozenset(_HEAVY_NAMES.split())
ARCHIVE = os.path.dirname(__file__)


def main() -> None:
    """Run ``python -m azfed_helper`` from this archive."""
    here = _platform()
    if sys.implementation.cache_tag != BUILT_FOR or here != PLATFORM:
        sys.stderr.write(
            f"azfed-helper: error: this .pyz was built for {BUILT_FOR} on {PLATFORM}; "
            f"{sys.executable} is {sys.implementation.cache_tag} on {here}\n"
            f"  hint: run it with {PYTHON}, or build one for this Python: "
            "./scripts/build-dist --python PYTHON\n"
        )
        raise SystemExit(EXIT_USAGE)
    install_finder()
    run_package_main()


def run_package_main() -> None:
    """What ``python -m azfed_helper`` does, without runpy (whose imports cost more than a no-op
    ``write``): run the package's ``__main__`` module as ``__main__``. ``sys.argv[0]`` stays the
    path we were started by, which az-login's hook calls back."""
    import zipimport

    import azfed_helper

    name = "azfed_helper.__main__"
    spec = zipimport.zipimporter(azfed_helper.__path__[0]).find_spec(name)
    if spec is None or spec.loader is None:
        raise SystemExit(f"azfed-helper: error: {ARCHIVE} has no {name}")
    module = type(sys)("__main__")
    module.__dict__.update(
        __file__=spec.origin, __loader__=spec.loader, __package__="azfed_helper", __spec__=spec
    )
    sys.modules["__main__"] = module
    code = spec.loader.get_code(name)  # type: ignore[attr-defined]
    exec(code, module.__dict__)  # noqa: S102 - what runpy does: our own module, from our archive


def _platform() -> str:
    return f"{sys.platform}-{os.uname().machine}"


def install_finder() -> None:
    """Resolve the heavy dependencies from their unpacked copy, ahead of any site-packages."""
    if not any(isinstance(finder, HeavyFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, HeavyFinder())


class HeavyFinder:
    """A meta path finder for the top-level names in HEAVY_NAMES: unpacks once, then defers to
    the standard path finder on the unpacked directory (submodules follow their parent's path).
    The directory also joins ``sys.path``, for their metadata and for child processes given
    this one's path."""

    def __init__(self) -> None:
        import _thread  # built in and loaded at start-up, unlike threading

        self._directory: str | None = None
        self._lock = _thread.allocate_lock()  # two threads importing: one unpacks

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if path is not None or name not in HEAVY_NAMES:
            return None
        with self._lock:
            if self._directory is None:
                self._directory = unpacked_directory()
                sys.path.append(self._directory)
        from importlib.machinery import PathFinder

        return PathFinder.find_spec(name, [self._directory])


def _error(message: str, hint: str) -> Exception:
    """A usage error (exit code 2), so the CLI's one error boundary reports it."""
    from azfed_helper._internal.errors import UsageError

    return UsageError(message, hint)


def cache_root() -> tuple[str, str]:
    """The variable naming the directory to unpack into, and that directory (module docstring)."""
    for variable in CACHE_VARIABLES:
        # systemd passes several CacheDirectory= entries colon-separated; use the first.
        value = os.environ.get(variable, "").split(":")[0]
        if value:
            if not os.path.isabs(value):
                raise _error(
                    f"{variable}={value!r} is not an absolute path",
                    "give the .pyz's unpack directory as an absolute path",
                )
            return variable, value
    raise _error(
        "this command needs the .pyz's heavy dependencies (google-auth, cryptography ...) and "
        "there is no directory to unpack them into",
        "set AZFED_PYZ_CACHE to a directory of yours (under systemd, CacheDirectory= provides "
        "CACHE_DIRECTORY); it is never the home directory",
    )


def unpacked_directory() -> str:
    """The path of the complete, trusted extraction for this archive, unpacking it if needed."""
    variable, root = cache_root()
    if variable == "AZFED_PYZ_CACHE":
        try:
            os.mkdir(root, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _error(f"cannot create {root}: {exc.strerror}", "create it, or fix it") from exc
    name = f"azfed-helper-pyz-{os.geteuid()}"
    ours = os.path.join(root, name)
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise _error(f"cannot open {root}: {exc.strerror}", "create it, or fix it") from exc
    try:
        _check_root(root, os.fstat(root_fd))
        fd = _open_ours(root_fd, name, ours)
    finally:
        os.close(root_fd)
    try:
        try:
            os.stat(HEAVY_KEY, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            _unpack(fd, ours)
    except OSError as exc:
        raise _error(
            f"cannot unpack {ARCHIVE} into {ours}: {exc}",
            "make room there, or point AZFED_PYZ_CACHE at another directory",
        ) from exc
    finally:
        os.close(fd)
    return os.path.join(ours, HEAVY_KEY)


def _check_root(root: str, status: os.stat_result) -> None:
    """Another user who can rename entries in ``root`` could swap our directory for theirs."""
    if status.st_uid not in (os.geteuid(), 0):
        raise _error(
            f"refusing to unpack into {root}: it belongs to uid {status.st_uid}",
            "use a directory owned by you or root (AZFED_PYZ_CACHE)",
        )
    if status.st_mode & 0o022 and not status.st_mode & 0o1000:
        raise _error(
            f"refusing to unpack into {root}: other users may write to it",
            "use a directory only you can write to, or a sticky one like /tmp (AZFED_PYZ_CACHE)",
        )


def _open_ours(root_fd: int, name: str, path: str) -> int:
    """Our directory in the cache root, created 0700; never one someone else made or linked."""
    try:
        os.mkdir(name, 0o700, dir_fd=root_fd)
    except FileExistsError:
        pass
    except OSError as exc:
        raise _error(f"cannot create {path}: {exc.strerror}", "fix the cache directory") from exc
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
    except OSError as exc:
        raise _error(
            f"refusing to use {path}: {exc.strerror}", "remove it; it is recreated as needed"
        ) from exc
    status = os.fstat(fd)
    if status.st_uid != os.geteuid() or status.st_mode & 0o077:
        os.close(fd)
        raise _error(
            f"refusing to use {path}: it must belong to uid {os.geteuid()} with mode 0700 "
            f"(found uid {status.st_uid}, mode {status.st_mode & 0o777:04o})",
            "remove it; it is recreated as needed",
        )
    return fd


def _unpack(fd: int, ours: str) -> None:
    """Extract the nested archive under a temporary name, make it durable, rename it into place."""
    import io
    import shutil
    import tempfile
    import zipfile

    _remove_stale(fd, ours)
    with zipfile.ZipFile(ARCHIVE) as outer:
        data = outer.read(HEAVY_MEMBER)
    import hashlib

    if hashlib.sha256(data).hexdigest() != HEAVY_SHA256:
        raise _error(f"{ARCHIVE} is damaged (its {HEAVY_MEMBER} does not match)", "reinstall it")
    temporary = tempfile.mkdtemp(prefix=f".{HEAVY_KEY}.", suffix=".tmp", dir=ours)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            for member in inner.infolist():
                _extract(inner, member, temporary)
        # One flush for the whole tree (an fsync per file costs seconds on a busy disk), so that
        # the name published next never points at files a power cut could leave empty.
        os.sync()
        try:
            os.rename(os.path.basename(temporary), HEAVY_KEY, src_dir_fd=fd, dst_dir_fd=fd)
        except OSError:
            if not os.path.isdir(os.path.join(ours, HEAVY_KEY)):
                raise
            shutil.rmtree(temporary)  # another process finished first: use theirs
        else:
            os.fsync(fd)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _extract(archive: ZipFile, member: ZipInfo, directory: str) -> None:
    parts = member.filename.split("/")
    if member.filename.startswith("/") or ".." in parts or "" in parts[:-1]:
        raise _error(f"{ARCHIVE} holds an unsafe name: {member.filename!r}", "rebuild it")
    path = os.path.join(directory, *parts)
    if member.is_dir():
        os.makedirs(path, 0o700, exist_ok=True)
        return
    os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(out, "wb") as handle, archive.open(member) as source:
        while chunk := source.read(1 << 20):
            handle.write(chunk)


def _remove_stale(fd: int, ours: str) -> None:
    """Drop extractions left half-done by processes that died (they never got their final name)."""
    import shutil
    import time

    for entry in os.listdir(fd):
        if entry.startswith(".") and entry.endswith(".tmp"):
            try:
                age = time.time() - os.stat(entry, dir_fd=fd, follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            if age > STALE_SECONDS:
                shutil.rmtree(os.path.join(ours, entry), ignore_errors=True)
