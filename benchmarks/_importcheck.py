"""Run by an environment's own interpreter (``python -B -I _importcheck.py ...``).

Two jobs, stdlib only, Python 3.8+:

``list SITE_PACKAGES``
    print, one per line, every top-level module name found directly in SITE_PACKAGES:
    packages (directories, namespace packages included), ``.py`` modules, extension modules
    and sourceless ``.pyc`` modules. Metadata directories, caches and names that are not
    identifiers are skipped.

``import RESULTS_FILE NAME...``
    import each NAME in turn in this process and append one line per module to RESULTS_FILE:
    ``START name`` before the import, then ``OK name`` or ``FAIL name ExceptionType: message``.
    The parent reads the file after the process ends, so a crash (segfault, abort) part-way
    leaves a ``START`` with no outcome: the parent counts that module as failed and runs the
    rest again in a new process. Output printed by the modules goes to /dev/null.
"""

import importlib
import os
import sys

_SUFFIXES = (".py", ".pyc")


def list_modules(site_packages):
    names = set()
    for entry in os.listdir(site_packages):
        path = os.path.join(site_packages, entry)
        if entry.startswith(".") or entry == "__pycache__":
            continue
        if os.path.isdir(path):
            name = entry
        elif entry.endswith(_SUFFIXES):
            name = entry.rsplit(".", 1)[0]
        elif entry.endswith(".so") or entry.endswith(".pyd"):
            name = entry.split(".", 1)[0]
        else:
            continue
        if name.isidentifier() and "." not in name:
            names.add(name)
    return sorted(names)


def import_modules(results_file, names):
    devnull = open(os.devnull, "w")
    with open(results_file, "a", encoding="utf-8") as out:
        for name in names:
            out.write(f"START {name}\n")
            out.flush()
            saved = sys.stdout, sys.stderr
            sys.stdout = sys.stderr = devnull
            try:
                importlib.import_module(name)
            except BaseException as exc:  # noqa: BLE001 - SystemExit from a module is a failure too
                sys.stdout, sys.stderr = saved
                message = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
                out.write(f"FAIL {name} {message}\n")
            else:
                sys.stdout, sys.stderr = saved
                out.write(f"OK {name}\n")
            out.flush()
    # Skip interpreter teardown: some extension modules crash or hang at exit, which would
    # say nothing about whether they import.
    os._exit(0)


def main(argv):
    if argv[:1] == ["list"] and len(argv) == 2:
        print("\n".join(list_modules(argv[1])))
        return 0
    if argv[:1] == ["import"] and len(argv) >= 2:
        import_modules(argv[1], argv[2:])
        return 0
    print("usage: _importcheck.py list SITE_PACKAGES | import RESULTS_FILE NAME...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
