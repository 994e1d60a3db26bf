"""Shared pieces of the benchmarks: paths, the methods users run today, tree measurement.

Stdlib only, so ``run.py`` and ``scale.py`` start under any Python 3.9+; matplotlib lives in a
separate bench virtual environment (see ``ensure_bench_venv``) and never in the project's
runtime dependencies.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import shlex
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / "work"
RESULTS_DIR = BENCH_DIR / "results"
BENCH_VENV = WORK_DIR / "bench-venv"
BENCH_REQUIREMENTS = BENCH_DIR / "requirements.txt"

# The hand-written recipe users copy today (issue 2), verbatim; V is the environment root.
RECIPE = (
    "find V -type d -name tests -o -name test | xargs rm -rf; "
    "find V -type d -name __pycache__ | xargs rm -rf; "
    "find V -type f -name '*.pyc' -o -name '*.pyo' | xargs rm -f; "
    "find V -type f -name '*.c' -o -name '*.h' | xargs rm -f; "
    "rm -rf V/lib/python*/site-packages/{pip,setuptools,wheel}* V/share"
)


def recipe_for(root: Path) -> str:
    """The recipe with V replaced by ``root`` (quoted for the shell)."""
    return RECIPE.replace("V", shlex.quote(str(root)))


# ---------------------------------------------------------------------------- measurement


@dataclass(frozen=True)
class TreeSize:
    """Size of a tree: ``files`` counts every non-directory entry (symlinks included);
    ``apparent`` sums their lengths; ``disk`` is what ``du`` reports (allocated blocks of files
    and directories, hard links counted once)."""

    files: int
    dirs: int
    apparent: int
    disk: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def measure_tree(root: Path) -> TreeSize:
    files = dirs = apparent = disk = 0
    seen: set[tuple[int, int]] = set()
    stack = [str(root)]
    while stack:
        top = stack.pop()
        try:
            st = os.lstat(top)
        except FileNotFoundError:
            continue
        dirs += 1
        disk += st.st_blocks * 512
        with os.scandir(top) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                st = entry.stat(follow_symlinks=False)
                files += 1
                apparent += st.st_size
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                disk += st.st_blocks * 512
    return TreeSize(files=files, dirs=dirs, apparent=apparent, disk=disk)


def tree_fingerprint(root: Path) -> str:
    """A digest of every entry's relative path, type and size (not contents or times)."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            size = 0 if stat.S_ISDIR(st.st_mode) else st.st_size  # a directory's size is history
            entries.append(f"{rel}/{name}\0{st.st_mode >> 12}\0{size}")
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()


def tar_gz_size(root: Path, level: int = 6) -> int:
    """Bytes of ``tar | gzip -level`` of ``root``'s content: a proxy for an image layer."""
    tar = subprocess.Popen(
        ["tar", "-C", str(root), "--sort=name", "--owner=0", "--group=0", "--numeric-owner",
         "--mtime=@0", "-cf", "-", "."],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    gz = subprocess.Popen(["gzip", f"-{level}", "-c"], stdin=tar.stdout, stdout=subprocess.PIPE)
    assert tar.stdout is not None and gz.stdout is not None
    tar.stdout.close()
    total = 0
    while True:
        chunk = gz.stdout.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    gz.wait()
    tar.wait()
    return total


@dataclass(frozen=True)
class Timed:
    returncode: int
    seconds: float
    stdout: str
    stderr: str

    def tail(self, lines: int = 12) -> str:
        text = (self.stderr.strip() + "\n" + self.stdout.strip()).strip()
        return "\n".join(text.splitlines()[-lines:])


def run_timed(cmd: list[str] | str, *, cwd: Path | None = None, timeout: float = 3600,
              env: dict[str, str] | None = None, shell: str | None = None) -> Timed:
    """Run ``cmd`` (argv, or a script string for ``shell``), return code, wall time, output."""
    argv = [shell, "-c", cmd] if shell else cmd
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              errors="replace", timeout=timeout, check=False)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = -9
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        err = f"timed out after {timeout}s"
    return Timed(rc, time.perf_counter() - start, out or "", err or "")


def time_with_peak_rss(cmd: list[str], *, cwd: Path | None = None,
                       timeout: float = 3600) -> tuple[Timed, int]:
    """Run ``cmd`` under GNU time; return the run and its peak resident set size in bytes."""
    gnu_time = shutil.which("time", path="/usr/bin:/bin") or "/usr/bin/time"
    marker = WORK_DIR / f".peak-{os.getpid()}"
    timed = run_timed([gnu_time, "-f", "%M", "-o", str(marker), *cmd], cwd=cwd, timeout=timeout)
    try:
        peak_kib = int(marker.read_text().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        peak_kib = -1
    marker.unlink(missing_ok=True)
    return timed, peak_kib * 1024


def fresh_copy(source: Path, dest: Path) -> None:
    """An identical copy (``cp -a``: modes, times, links) of ``source`` at ``dest``.

    Ends with ``sync``: otherwise the copy's dirty pages are written back while the next
    (timed) method runs, and whichever method comes first pays for the copy.
    """
    remove_tree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(source), str(dest)], check=True)
    os.sync()


def remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        subprocess.run(["rm", "-rf", str(path)], check=True)


def drop_to_site_packages(root: Path) -> Path:
    found = sorted(root.glob("lib/python*/site-packages"))
    if not found:
        raise SystemExit(f"no lib/python*/site-packages under {root}")
    return found[0]


# ---------------------------------------------------------------------------- the machine


def machine_info() -> dict[str, str | int]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    fs = run_timed(["df", "-T", str(WORK_DIR)], timeout=30).stdout.splitlines()
    fstype = fs[-1].split()[1] if len(fs) > 1 else "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": platform.platform(terse=True),
        "filesystem": fstype,
        "tar": run_timed(["tar", "--version"], timeout=30).stdout.splitlines()[0],
        "find": run_timed(["find", "--version"], timeout=30).stdout.splitlines()[0],
    }


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def git_revision() -> str:
    rev = run_timed(["git", "-C", str(REPO_DIR), "describe", "--always", "--dirty"], timeout=30)
    return rev.stdout.strip() or "unknown"


def file_digest(*paths: Path, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------- tools


def ensure_bench_venv(python: str, *, log=print) -> Path:
    """The bench venv: this repository installed editable plus matplotlib (plots only).

    Rebuilt when ``requirements.txt`` or ``pyproject.toml`` change.
    """
    stamp = WORK_DIR / "bench-venv.stamp"
    want = file_digest(BENCH_REQUIREMENTS, REPO_DIR / "pyproject.toml", extra=python)
    bin_dir = BENCH_VENV / "bin"
    if stamp.is_file() and stamp.read_text() == want and (bin_dir / "python").exists():
        _compile_sources(bin_dir / "python")
        return BENCH_VENV
    log(f"building bench venv {BENCH_VENV}")
    remove_tree(BENCH_VENV)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "venv", str(BENCH_VENV)], check=True)
    pip_env = dict(os.environ, PIP_CACHE_DIR=str(WORK_DIR / "pip-cache"),
                   PIP_DISABLE_PIP_VERSION_CHECK="1")
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q",
                    "-r", str(BENCH_REQUIREMENTS), "-e", str(REPO_DIR)],
                   check=True, env=pip_env, stderr=subprocess.DEVNULL)
    stamp.write_text(want)
    _compile_sources(bin_dir / "python")
    return BENCH_VENV


def _compile_sources(python: Path) -> None:
    """Byte-compile the editable sources, as installing a wheel does: with
    PYTHONDONTWRITEBYTECODE set (as on this machine, and in many Dockerfiles) every
    venv-prune run would otherwise compile its own modules again, about 0.1 s each time."""
    subprocess.run([str(python), "-m", "compileall", "-q", str(REPO_DIR / "prune")],
                   check=True, stdout=subprocess.DEVNULL)


def venv_prune_command(explicit: str | None) -> list[str]:
    """How to call venv-prune: ``--venv-prune`` if given, else the bench venv's console script."""
    if explicit:
        return shlex.split(explicit)
    return [str(BENCH_VENV / "bin" / "venv-prune")]


def venv_prune_available(cmd: list[str]) -> tuple[bool, str]:
    probe = run_timed([*cmd, "--help"], timeout=120)
    if probe.returncode != 0:
        return False, probe.tail(3)
    return True, probe.stdout


def log_line(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
