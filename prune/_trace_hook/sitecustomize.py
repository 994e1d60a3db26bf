"""venv-prune's trace hook, loaded as ``sitecustomize`` into every traced Python process.

``venv-prune trace`` (prune/trace.py) copies this file into a private temporary directory,
puts that directory first on PYTHONPATH and sets two variables: VENV_PRUNE_TRACE_ROOT (the
environment's real root) and VENV_PRUNE_TRACE_OUT (a directory for records). Every Python
process that inherits them - the command, its subprocesses, multiprocessing workers, server
workers - imports this module at start-up (``site`` imports ``sitecustomize``), installs an
audit hook (PEP 578) and appends what it sees under the root to its own JSON-lines file:

    ["process", pid, ppid]            first line of every file
    ["module", name, path | null]     a module whose file (or namespace dir) is under the root
    ["file", path]                    a file opened (``open`` event) or mapped into memory
    ["dir", path]                     a directory listed (os.listdir / os.scandir / glob)
    ["library", path]                 a shared library: ctypes.dlopen, extension, memory map

Paths are real paths relative to the root, POSIX. Each record is written once per process,
at once, with one ``os.write`` on an O_APPEND file: workers that end with ``os._exit`` skip
atexit, so nothing may wait for the end. A forked child starts a file of its own.

This runs inside other people's programs, on whatever Python the environment has (3.8+,
the first with audit hooks): standard library only, no newer syntax, and it must never raise
into the traced program or write anywhere but VENV_PRUNE_TRACE_OUT. The environment's own
``sitecustomize``, if any, is loaded after the hook is installed, so its imports are traced.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from _thread import get_ident

_EVENTS = frozenset(
    {
        "import",
        "exec",
        "open",
        "os.listdir",
        "os.scandir",
        "glob.glob",
        "glob.glob/2",
        "ctypes.dlopen",
    }
)
_MAGIC = ("*", "?", "[")
_MISSING = object()


def _is_library(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return name.endswith(".so") or ".so." in name


class _Tracer:
    def __init__(self, out: str, root: str) -> None:
        self.out = out
        self.root = os.path.realpath(root)
        self.prefix = self.root.rstrip(os.sep) + os.sep
        self.fd = -1
        self.seen: set[tuple[object, ...]] = set()
        self.paths: dict[str, object] = {}
        self.pending: set[str] = set()
        self.modules: set[str] = set()
        self.busy: set[int] = set()
        self.maps_due = False

    # -- recording -------------------------------------------------------------------------

    def open_file(self) -> None:
        name = f"{os.getpid()}-{os.urandom(4).hex()}.jsonl"
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        try:
            self.fd = os.open(os.path.join(self.out, name), flags, 0o600)
        except OSError:
            self.fd = -1
            return
        self.write(["process", os.getpid(), os.getppid()])

    def write(self, record: list[object]) -> None:
        if self.fd < 0:
            return
        try:
            os.write(self.fd, (json.dumps(record) + "\n").encode("ascii"))
        except (OSError, ValueError):
            pass

    def emit(self, kind: str, name: str, path: str | None = None) -> None:
        key = (kind, name, path)
        if key in self.seen:
            return
        self.seen.add(key)
        self.write([kind, name] if kind != "module" else [kind, name, path])

    def rel(self, path: object) -> str | None:
        """The root-relative real path of ``path``, or None when it is not under the root."""
        if path is None or isinstance(path, int):
            return None
        try:
            text = os.fspath(path)  # type: ignore[call-overload]
        except TypeError:
            return None
        if isinstance(text, bytes):
            text = os.fsdecode(text)
        if not isinstance(text, str) or not text:
            return None
        if not os.path.isabs(text):
            text = os.path.join(os.getcwd(), text)
        cached = self.paths.get(text, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        real = os.path.realpath(text)
        rel = None
        if real.startswith(self.prefix):
            rel = real[len(self.prefix) :].replace(os.sep, "/")
        self.paths[text] = rel
        return rel

    def module(self, name: str, mod: object) -> None:
        self.modules.add(name)
        try:
            # Not getattr: a lazily loaded module (importlib.util.LazyLoader) would load on
            # any attribute access, and tracing must not change what the program does.
            namespace = object.__getattribute__(mod, "__dict__")
        except Exception:  # noqa: BLE001 - not a module: nothing to record
            return
        file = namespace.get("__file__")
        if isinstance(file, str):
            rel = self.rel(file)
            if rel is not None:
                self.emit("module", name, rel)
                if _is_library(rel):
                    self.emit("library", rel)
                    # The extension's own dependencies (``*.libs/``) show only in the maps.
                    self.maps_due = True
            return
        search = namespace.get("__path__")
        if search is not None:
            for entry in list(search):
                if self.rel(entry) is not None:
                    self.emit("module", name, None)
                    return

    def resolve_pending(self) -> None:
        # The import event comes before the module exists; its file is known once the
        # module is in sys.modules (before its body runs, so at its own "exec" event).
        modules = sys.modules
        done = [name for name in self.pending if name in modules]
        for name in done:
            self.pending.discard(name)
            self.module(name, modules[name])

    def sweep(self) -> None:
        for name, mod in list(sys.modules.items()):
            if name not in self.modules:
                self.module(name, mod)
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        if spec is not None and getattr(spec, "name", None) and getattr(spec, "origin", None):
            rel = self.rel(spec.origin)
            if rel is not None:
                self.emit("module", spec.name, rel)

    def read_maps(self) -> None:
        self.maps_due = False
        try:
            fd = os.open("/proc/self/maps", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return
        chunks = []
        try:
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        prefix = self.prefix
        for line in b"".join(chunks).decode("utf-8", "surrogateescape").splitlines():
            parts = line.split(None, 5)
            if len(parts) < 6 or not parts[5].startswith(prefix):
                continue
            path = parts[5]
            if path.endswith(" (deleted)"):
                continue
            rel = path[len(prefix) :]
            self.emit("library" if _is_library(rel) else "file", rel)

    def startup(self) -> None:
        """Record what the interpreter read before the hook existed."""
        cfg = os.path.join(self.root, "pyvenv.cfg")
        if os.path.realpath(sys.prefix) == self.root and os.path.isfile(cfg):
            self.emit("file", "pyvenv.cfg")
        for entry in list(sys.path):
            rel = self.rel(entry)
            if rel is None or not os.path.isdir(entry):
                continue
            # ``site`` listed each site directory and read every .pth file in it.
            try:
                names = os.listdir(entry)
            except OSError:
                continue
            self.emit("dir", rel)
            for name in names:
                if name.endswith(".pth"):
                    pth = self.rel(os.path.join(entry, name))
                    if pth is not None:
                        self.emit("file", pth)
        self.sweep()

    # -- audit hook ------------------------------------------------------------------------

    def hook(self, event: str, args: tuple[object, ...]) -> None:
        if event not in _EVENTS:
            return
        tid = get_ident()
        if tid in self.busy:
            return  # our own os.open / os.listdir calls raise events too
        self.busy.add(tid)
        try:
            self.handle(event, args)
        except Exception:  # noqa: BLE001, S110 - never raise into the traced program
            pass
        finally:
            self.busy.discard(tid)

    def handle(self, event: str, args: tuple[object, ...]) -> None:
        if self.pending:
            self.resolve_pending()
        if self.maps_due:
            self.read_maps()
        if event == "import":
            name = args[0]
            if isinstance(name, str) and name not in self.modules:
                self.pending.add(name)
        elif event == "open":
            path = args[0]
            rel = self.rel(path)
            if rel is not None and ("file", rel, None) not in self.seen:
                if ("dir", rel, None) in self.seen:
                    return
                text = os.path.join(self.root, rel)
                self.emit("dir" if os.path.isdir(text) else "file", rel)
        elif event in ("os.listdir", "os.scandir"):
            path = args[0] if args else None
            rel = self.rel(path if path not in (None, "", b"") else ".")
            if rel:
                self.emit("dir", rel)
        elif event in ("glob.glob", "glob.glob/2"):
            self.glob(args)
        elif event == "ctypes.dlopen":
            name = args[0] if args else None
            if isinstance(name, (str, bytes)) and os.sep in os.fsdecode(name):
                rel = self.rel(name)
                if rel:
                    self.emit("library", rel)
            # The library is mapped only after this event: read the maps at the next one.
            self.maps_due = True

    def glob(self, args: tuple[object, ...]) -> None:
        pattern = args[0] if args else None
        if isinstance(pattern, bytes):
            pattern = os.fsdecode(pattern)
        if not isinstance(pattern, str):
            return
        base = args[2] if len(args) > 2 and isinstance(args[2], (str, bytes)) else None
        if base is not None:
            pattern = os.path.join(os.fsdecode(base), pattern)
        fixed = []
        for part in pattern.split(os.sep):
            if any(m in part for m in _MAGIC):
                break
            fixed.append(part)
        directory = os.sep.join(fixed) or "."
        if os.path.isdir(directory):
            rel = self.rel(directory)
            if rel:
                self.emit("dir", rel)

    # -- life cycle ------------------------------------------------------------------------

    def finish(self) -> None:
        tid = get_ident()
        self.busy.add(tid)
        try:
            self.resolve_pending()
            self.sweep()
            self.read_maps()
        except Exception:  # noqa: BLE001, S110 - never raise into the traced program
            pass
        finally:
            self.busy.discard(tid)

    def after_fork(self) -> None:
        self.busy.clear()  # only the forking thread lives on in the child
        self.busy.add(get_ident())
        try:
            if self.fd >= 0:
                os.close(self.fd)
        except OSError:
            pass
        try:
            self.open_file()
        finally:
            self.busy.discard(get_ident())

    def install(self) -> None:
        tid = get_ident()
        self.busy.add(tid)
        try:
            self.open_file()
            self.startup()
        except Exception:  # noqa: BLE001, S110 - never raise into the traced program
            pass
        finally:
            self.busy.discard(tid)
        sys.addaudithook(self.hook)
        atexit.register(self.finish)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.after_fork)
        # multiprocessing's fork and forkserver workers end with os._exit, which skips
        # atexit: record the end first. The wrapper only observes, then exits as asked.
        real_exit = os._exit

        def _exit(status: int) -> None:
            self.finish()
            real_exit(status)

        os._exit = _exit  # type: ignore[assignment]


def _chain_sitecustomize(tracer: _Tracer | None) -> None:
    """Load the ``sitecustomize`` this module shadows (the environment's or the system's)."""
    import importlib.machinery
    import importlib.util

    here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    path = [p for p in sys.path if os.path.realpath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    if tracer is not None:
        # The name was seen (as this module) before the hook existed: record the real one.
        tracer.modules.discard("sitecustomize")
        tracer.pending.add("sitecustomize")
    spec.loader.exec_module(module)


def _main() -> None:
    out = os.environ.get("VENV_PRUNE_TRACE_OUT")
    root = os.environ.get("VENV_PRUNE_TRACE_ROOT")
    tracer = None
    if out and root and hasattr(sys, "addaudithook") and os.path.isdir(out):
        tracer = _Tracer(out, root)
        tracer.install()
    _chain_sitecustomize(tracer)


_main()
