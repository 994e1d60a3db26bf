"""Scan an environment, read-only: every distribution, every file, and who owns it.

Metadata is read with importlib-metadata (``Distribution.at``) and packaging; broken or
duplicate metadata becomes a :class:`~prune.model.Diagnostic`, never an exception. The
walk never follows symlinks: a link is recorded as a link, whatever it points at.

The command line starts the walk before it imports anything heavy (:func:`prestart`), so
this module imports importlib-metadata and packaging only where it reads metadata.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from operator import attrgetter
from pathlib import Path
from stat import S_ISLNK, S_ISREG
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from . import _tmp
from ._gc import paused_gc
from .env import Environment
from .model import Diagnostic, Distribution, EntryPoint, FileEntry, Inventory, Progress
from .record import read_paths, resolve_entries

if TYPE_CHECKING:
    import importlib_metadata

__all__ = ["scan", "prestart", "FindWalk", "STATE_DIR_NAME"]

#: Name of the directory (inside a venv/prefix root) that holds a run's stash and journal.
STATE_DIR_NAME = ".venv-prune"


_Found = tuple[str, int, bool, bool]  # path, lstat size, is a symlink, is an executable file


def _walk(
    root: Path, areas: tuple[str, ...], skip: frozenset[str]
) -> tuple[list[_Found], list[str], list[Diagnostic]]:
    """Walk ``areas`` (relative to root) without following links: files (regular files and
    symlinks of any kind, with their lstat size), real directories, and diagnostics for
    entries that could not be read. ``skip`` holds relative paths never entered (venv-prune's
    own state directory). Plain tuples: a FileEntry is made once per file, by :func:`scan`,
    when its owner is known."""
    files: list[_Found] = []
    dirs: list[str] = []
    diags: list[Diagnostic] = []
    stack = [a for a in areas]
    root_s = str(root)
    while stack:
        rel = stack.pop()
        base = os.path.join(root_s, rel) if rel else root_s
        try:
            it = os.scandir(base)
        except OSError as exc:
            diags.append(Diagnostic("warning", "unreadable-dir", f"cannot list: {exc.strerror}", rel))
            continue
        with it:
            for entry in it:
                child = f"{rel}/{entry.name}" if rel else entry.name
                if child in skip:
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        dirs.append(child)
                        stack.append(child)
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    diags.append(Diagnostic("warning", "unreadable", f"cannot stat: {exc.strerror}", child))
                    continue
                files.append(_found(child, st))
    return files, dirs, diags


class _Listing(NamedTuple):
    """What a walk found. Files come in groups of one kind, as parallel lists, so that a
    100k-file listing is turned into file entries by C loops (``map``, ``zip``), not by a
    Python statement per file."""

    #: (paths, lstat sizes, is a symlink, is an executable file), one tuple per kind.
    groups: list[tuple[list[str], list[int], bool, bool]]
    #: Real directories (not links).
    dirs: list[str]

    @classmethod
    def of(cls, files: list[_Found], dirs: list[str]) -> _Listing:
        kinds: dict[tuple[bool, bool], tuple[list[str], list[int]]] = {}
        for path, size, link, exe in files:
            paths, sizes = kinds.setdefault((link, exe), ([], []))
            paths.append(path)
            sizes.append(size)
        return cls([(paths, sizes, link, exe) for (link, exe), (paths, sizes) in sorted(kinds.items())], dirs)

    def found(self) -> list[_Found]:
        """Every file as one tuple (path, size, is a symlink, is executable)."""
        return [(p, n, link, exe) for paths, sizes, link, exe in self.groups for p, n in zip(paths, sizes)]


class FindWalk:
    """:func:`_walk` done by GNU ``find`` in a process of its own, started before the
    metadata is read so that both run at once.

    One ``find`` walk lists a 100k-file tree in about half the time Python's scandir and
    lstat calls take, and it runs on another core while this process parses METADATA and
    RECORD files. Where ``find`` is missing, is not GNU find (busybox, BSD: no
    ``-fprintf``), or reports any problem at all, :meth:`result` returns None and the caller
    walks in Python, which turns each problem into a diagnostic. ``find -H`` follows a
    symlink only where it is a starting point (as ``os.scandir`` does), never inside the
    tree, and prints a link's own size, as lstat does.
    """

    # find runs in the root and prints paths relative to it. Each kind of entry goes to a
    # file of its own, as NUL-terminated fields (a path may hold a newline): directories as
    # their path; files as their lstat size, then their path. A regular file with an execute
    # bit is "exe", a symlink "link", anything else (FIFOs too) "file". Into files, not a
    # pipe: a full pipe would stop find until this process, busy with the metadata, came
    # to read it.
    _KINDS = {"file": (False, False), "exe": (False, True), "link": (True, False)}

    def __init__(self, root: Path, areas: tuple[str, ...], skip: frozenset[str]) -> None:
        self._walked = (os.fspath(root), areas)
        self._skip = skip
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._dir: Optional[str] = None
        find = shutil.which("find")
        if areas == ("",):
            starts, name = ["."], "%P"
        elif all(a and not a.startswith(("-", "(", ")", "!", ",", "/")) for a in areas):
            starts, name = list(areas), "%p"
        else:
            return
        if find is None:
            return
        self._dir = _tmp.mkdtemp("find")
        out = {kind: os.path.join(self._dir, kind) for kind in ("dir", *self._KINDS)}
        expression = [
            "(", "-type", "d", "-fprintf", out["dir"], f"{name}\\0",
            "-o", "-type", "f", "-perm", "/111", "-fprintf", out["exe"], f"%s\\0{name}\\0",
            "-o", "-type", "l", "-fprintf", out["link"], f"%s\\0{name}\\0",
            "-o", "-fprintf", out["file"], f"%s\\0{name}\\0", ")",
        ]
        self._err = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                [find, "-H", *starts, "-mindepth", "1", *expression],
                cwd=root, stdout=subprocess.DEVNULL, stderr=self._err, stdin=subprocess.DEVNULL)
        except OSError:
            self.close()

    def walks(self, env: Environment) -> bool:
        """This is a walk of what a scan of ``env`` walks (its root and areas)."""
        return self._walked == (os.fspath(env.root), env.walk)

    def result(self) -> Optional[_Listing]:
        """Files and directories as :func:`_walk` finds them, or None (walk in Python)."""
        try:
            return self._result()
        finally:
            self.close()

    def _result(self) -> Optional[_Listing]:
        if self._proc is None or self._dir is None:
            return None
        if self._proc.wait() != 0 or self._err.seek(0, os.SEEK_END):
            return None
        try:
            dirs = self._fields("dir")
            groups = []
            for kind, (link, exe) in self._KINDS.items():
                fields = self._fields(kind)
                if len(fields) % 2:
                    return None  # a truncated entry: do not guess
                groups.append((fields[1::2], list(map(int, fields[0::2])), link, exe))
        except (OSError, ValueError):
            return None
        return self._without_skipped(_Listing(groups, dirs))

    def _fields(self, kind: str) -> list[str]:
        assert self._dir is not None
        with open(os.path.join(self._dir, kind), "rb") as fh:
            fields = fh.read().decode("utf-8", "surrogateescape").split("\0")
        if fields.pop() != "":
            raise ValueError("output does not end with a NUL")
        return fields

    def close(self) -> None:
        """Stop find if it still runs and remove its output (idempotent)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self._err.close()
            self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _without_skipped(self, listing: _Listing) -> _Listing:
        """Drop venv-prune's own state directory (never entered by the Python walk)."""
        skip = self._skip
        # Nothing lies under a skipped path unless the path itself was listed.
        if skip.isdisjoint(listing.dirs) and all(skip.isdisjoint(g[0]) for g in listing.groups):
            return listing
        below = tuple(s + "/" for s in skip)
        return _Listing.of([f for f in listing.found() if f[0] not in skip and not f[0].startswith(below)],
                           [d for d in listing.dirs if d not in skip and not d.startswith(below)])


def _found(path: str, st: os.stat_result) -> _Found:
    mode = st.st_mode
    return path, st.st_size, S_ISLNK(mode), S_ISREG(mode) and bool(mode & 0o111)


def _version_key(v: str) -> tuple[int, object]:
    from packaging.version import InvalidVersion, Version

    try:
        return (1, Version(v))
    except InvalidVersion:
        return (0, v)


def _load_distribution(
    env: Environment, site: str, meta_rel: str, diags: list[Diagnostic]
) -> Optional[Distribution]:
    """The distribution whose metadata directory (or egg-info file) is ``meta_rel``, in
    ``site``; None when it has no readable METADATA with a Name (a diagnostic says so)."""
    from packaging.utils import canonicalize_name

    meta = _MetadataDir.open(env.root / meta_rel, meta_rel, diags)
    if meta is None:
        return None
    record = meta.record_files(site)
    files = record.files
    return Distribution(
        name=canonicalize_name(meta.name),
        display_name=meta.name,
        version=meta.metadata["Version"] or "",
        metadata_dir=meta_rel,
        site=site,
        files=tuple(sorted(set(files))),
        top_level=meta.top_level(),
        requires=meta.requires(),
        extras=tuple(meta.metadata.get_all("Provides-Extra") or ()),
        entry_points=meta.entry_points(),
        requested=meta.read("REQUESTED") is not None,
        editable=meta.editable(record),
        installer=(meta.read("INSTALLER") or "").strip(),
        has_record=record.has_record,
        record_error=record.error,
    )


class _Record(NamedTuple):
    """What a distribution's RECORD (or egg-info file list) says it owns."""

    #: Paths relative to the environment's root (empty when unknown).
    files: list[str]
    #: The file list was read; False: only files under the top-level names are attributed.
    has_record: bool
    #: Why RECORD could not be read ("" when it could): the distribution is kept whole.
    error: str
    #: RECORD's text, or None.
    text: Optional[str]


class _MetadataDir:
    """One distribution's metadata, read through importlib-metadata, each file at most once.

    Every problem becomes a diagnostic in ``diags`` (never an exception): the distribution is
    then read as far as its metadata allows.
    """

    def __init__(self, dist: importlib_metadata.Distribution, path: Path, rel: str, metadata: Any,
                 name: str, diags: list[Diagnostic]) -> None:
        self.dist = dist
        self.path = path
        self.rel = rel
        self.metadata = metadata
        self.name = name
        self.diags = diags
        # What the metadata directory holds, listed once: most distributions lack most of the
        # optional files, and a failed open costs more than a name lookup. (An egg-info file,
        # not a directory, is read and seen.)
        try:
            self.present: Optional[frozenset[str]] = frozenset(os.listdir(path))
        except OSError:
            self.present = None

    @classmethod
    def open(cls, path: Path, rel: str, diags: list[Diagnostic]) -> Optional[_MetadataDir]:
        """The metadata at ``path``, or None (and a diagnostic) without a METADATA that names
        the distribution."""
        import importlib_metadata

        if path.is_dir() and not any((path / n).is_file() for n in ("METADATA", "PKG-INFO")):
            diags.append(Diagnostic(
                "warning", "missing-metadata",
                "no METADATA; its files are treated as unowned and its metadata directory is kept", rel))
            return None
        dist = importlib_metadata.Distribution.at(path)
        try:
            metadata = dist.metadata
            raw_name = metadata["Name"] if metadata is not None else None
        except Exception as exc:  # noqa: BLE001 - any broken METADATA is a diagnostic
            diags.append(Diagnostic("warning", "bad-metadata", f"unreadable METADATA: {exc}", rel))
            return None
        if not raw_name:
            diags.append(Diagnostic("warning", "missing-metadata",
                                    "no METADATA (or no Name in it); its files are treated as unowned", rel))
            return None
        return cls(dist, path, rel, metadata, raw_name, diags)

    def has(self, name: str) -> bool:
        """The directory may hold ``name`` (True when it could not be listed)."""
        return self.present is None or name in self.present

    def read(self, name: str) -> Optional[str]:
        """The text of the metadata file ``name``, or None when it is absent or unreadable."""
        if not self.has(name):
            return None
        try:
            return self.dist.read_text(name)
        except (OSError, UnicodeDecodeError, ValueError):
            return None

    def record_files(self, site: str) -> _Record:
        """The files RECORD lists (egg-info: installed-files.txt or SOURCES.txt), relative to
        the environment's root."""
        text, error = self._record_text()
        if error:
            return _Record([], False, error, text)
        listed: Optional[list[str]] = None
        if text is not None:
            # RECORD is parsed here rather than through Distribution.files, which stats every
            # entry to skip missing ones: a second walk of the whole tree on a big environment.
            try:
                listed = resolve_entries(site, read_paths(text))
            except Exception as exc:  # noqa: BLE001 - malformed RECORD rows must not crash a scan
                self.diags.append(Diagnostic("warning", "bad-record", f"malformed RECORD: {exc}", self.rel))
        else:
            try:
                found = self.dist.files  # egg-info: installed-files.txt / SOURCES.txt
                listed = resolve_entries(site, [str(pp) for pp in found]) if found is not None else None
            except Exception as exc:  # noqa: BLE001
                self.diags.append(Diagnostic("warning", "bad-record", f"unreadable file list: {exc}", self.rel))
        if listed is None:
            self.diags.append(Diagnostic(
                "info", "no-record", f"{self.name} has no RECORD; only files under its top-level names are attributed",
                self.rel))
            return _Record([], False, "", text)
        return _Record(listed, True, "", text)

    def _record_text(self) -> tuple[Optional[str], str]:
        """RECORD's text (None when there is none) and why it cannot be read ("" when it can)."""
        text = self.read("RECORD")
        if text is None and self.has("RECORD") and (self.path / "RECORD").exists():
            # importlib-metadata turns a PermissionError into "no such file" (issue 16: an
            # unreadable RECORD read as absent let --remove-dist leave the distribution's files).
            try:
                text = (self.path / "RECORD").read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                error = getattr(exc, "strerror", None) or str(exc)
                self.diags.append(Diagnostic(
                    "warning", "unreadable-record",
                    f"{self.name}: RECORD cannot be read ({error}); which files are its own is "
                    "unknown, so the distribution is kept whole", self.rel))
                return None, error
        return text, ""

    def top_level(self) -> tuple[str, ...]:
        text = self.read("top_level.txt")
        return tuple(sorted({t.strip() for t in (text or "").splitlines() if t.strip()}))

    def requires(self) -> tuple[str, ...]:
        """Requires-Dist from the METADATA already parsed (Distribution.requires parses it
        again); requires.txt (egg-info) when METADATA names none."""
        try:
            return tuple(self.metadata.get_all("Requires-Dist")
                         or (self.dist.requires if self.rel.endswith(".egg-info") else None) or ())
        except Exception as exc:  # noqa: BLE001
            self.diags.append(Diagnostic("warning", "bad-requires", f"unreadable requirements: {exc}", self.rel))
            return ()

    def entry_points(self) -> tuple[EntryPoint, ...]:
        if not self.has("entry_points.txt"):
            return ()
        try:
            return tuple(sorted((EntryPoint(ep.group, ep.name, ep.value) for ep in self.dist.entry_points),
                                key=lambda e: (e.group, e.name)))
        except Exception as exc:  # noqa: BLE001
            self.diags.append(Diagnostic("warning", "bad-entry-points", f"unreadable entry_points.txt: {exc}",
                                         self.rel))
            return ()

    def editable(self, record: _Record) -> bool:
        """Installed with ``pip install -e`` (PEP 660): direct_url.json says so, or the files
        include an ``__editable__`` .pth file."""
        direct_url = self.read("direct_url.json")
        if direct_url:
            try:
                if bool(json.loads(direct_url).get("dir_info", {}).get("editable", False)):
                    return True
            except (ValueError, AttributeError):
                self.diags.append(Diagnostic("warning", "bad-direct-url", "direct_url.json is not valid JSON",
                                             self.rel))
        return (record.text is None or "__editable__" in record.text) and any(
            f.endswith(".pth") and "__editable__" in f for f in record.files)


def _find_metadata_dirs(env: Environment) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for site in env.site_packages:
        base = env.root / site if site else env.root
        try:
            names = sorted(os.listdir(base))
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                found.append((site, f"{site}/{name}" if site else name))
    return found


# What a walk never enters: venv-prune's own state directory.
_SKIP = frozenset({STATE_DIR_NAME})


def prestart(env: Environment) -> FindWalk:
    """Start walking ``env`` now, for a later :func:`scan` of it (``scan(env, walk=...)``).

    The launcher (:mod:`prune._launch`) calls this before it imports the planner, so that the
    walk and the imports happen at once. The caller owns the walk: a scan of ``env`` takes and
    closes it; a walk no scan takes must be closed (:meth:`FindWalk.close`).
    """
    return FindWalk(env.root, env.walk, _SKIP)


def scan(env: Environment, *, progress: Optional[Progress] = None, walk: Optional[FindWalk] = None) -> Inventory:
    """Read the environment: distributions, files and owners. Never writes anything.

    :param env: from :func:`prune.env.locate`.
    :param progress: called with short status lines for long scans.
    :param walk: a walk already under way (:func:`prestart`): taken (and closed) when it walks
        ``env``, else left alone for its owner to close.
    """
    with paused_gc():
        return _scan(env, progress, walk if walk is not None and walk.walks(env) else None)


def _scan(env: Environment, progress: Optional[Progress], walk: Optional[FindWalk]) -> Inventory:
    diags: list[Diagnostic] = []
    if progress:
        progress(f"scanning {env.root}")
    skip = _SKIP
    finder = walk or FindWalk(env.root, env.walk, skip)
    try:
        distributions = _distributions(env, diags)
        # A file two RECORDs list is the first distribution's (by name): each update
        # overrides those of the distributions after it.
        owners: dict[str, str] = {}
        for dist in reversed(distributions):
            owners.update(dict.fromkeys(dist.files, dist.name))
        listing = finder.result()
    finally:
        finder.close()
    if listing is None:
        files, dirs, walk_diags = _walk(env.root, env.walk, skip)
        diags[:0] = walk_diags
        listing = _Listing.of(files, dirs)

    if env.kind == "prefix":
        listing.groups.extend(_Listing.of(_prefix_scripts(env, distributions, listing), []).groups)

    # Files inside the metadata directory belong to the distribution even if RECORD forgot
    # them (REQUESTED, direct_url.json written after the fact).
    meta_dirs = {d.metadata_dir: d.name for d in distributions}
    owned_files: list[FileEntry] = []
    for paths, sizes, link, exe in listing.groups:
        owner_of: list[Optional[str]] = list(map(owners.get, paths))
        i = -1
        with contextlib.suppress(ValueError):  # list.index: the unowned found without a loop
            while True:
                i = owner_of.index(None, i + 1)
                owner_of[i] = meta_dirs.get(paths[i].rpartition("/")[0])
        owned_files += FileEntry.many(paths, sizes, owner_of, is_link=link, executable=exe)
    # By path (paths are unique): strings sort faster than the tuples that hold them.
    owned_files.sort(key=attrgetter("path"))

    if progress:
        progress(f"found {len(distributions)} distributions, {len(owned_files)} files")
    return Inventory(
        env=env,
        distributions=distributions,
        files=tuple(owned_files),
        dirs=tuple(sorted(listing.dirs)),
        diagnostics=tuple(diags),
    )


def _distributions(env: Environment, diags: list[Diagnostic]) -> tuple[Distribution, ...]:
    """Every distribution with readable metadata, by name; a duplicate becomes a diagnostic."""
    dists_by_name: dict[str, Distribution] = {}
    for site, meta_rel in _find_metadata_dirs(env):
        dist = _load_distribution(env, site, meta_rel, diags)
        if dist is None:
            continue
        other = dists_by_name.get(dist.name)
        if other is not None:
            keep, drop = sorted((other, dist), key=lambda d: _version_key(d.version), reverse=True)
            diags.append(
                Diagnostic("warning", "duplicate-distribution",
                           f"{dist.name} is installed twice ({other.metadata_dir}, {dist.metadata_dir}); "
                           f"using {keep.version}, both metadata directories are kept",
                           drop.metadata_dir)
            )
            dists_by_name[dist.name] = keep
        else:
            dists_by_name[dist.name] = dist
    return tuple(sorted(dists_by_name.values(), key=lambda d: d.name))


def _prefix_scripts(env: Environment, distributions: tuple[Distribution, ...], listing: _Listing) -> list[_Found]:
    """A prefix is walked only inside site-packages; its distributions' scripts and data
    (bin/, share/) are taken from their RECORDs, one lstat each."""
    known = {p for g in listing.groups for p in g[0]}
    extra: list[_Found] = []
    for dist in distributions:
        for f in dist.files:
            if f in known or any(f == s or f.startswith(s + "/") for s in env.site_packages):
                continue
            try:
                st = os.lstat(env.root / f)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                continue
            known.add(f)
            extra.append(_found(f, st))
    return extra
