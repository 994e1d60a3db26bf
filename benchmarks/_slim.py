"""Serverless python-requirements ``slim: true`` with its default patterns, reproduced.

The plugin (lib/slim.js) deletes, under the requirements folder, everything matched by the
globs ``**/*.py[c|o]``, ``**/__pycache__*`` and ``**/*.dist-info*`` (node-glob: ``**`` spans
directories, dot-directories are not entered, ``[c|o]`` is a character class), then runs
``find FOLDER -name "*.so" -exec strip {} ;``. Here FOLDER is the environment's site-packages,
the equivalent of the plugin's requirements folder. Usage: ``python _slim.py SITE_PACKAGES``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

PATTERNS = ("**/*.py[c|o]", "**/__pycache__*", "**/*.dist-info*")


def slim(folder: str) -> None:
    for pattern in PATTERNS:
        for path in glob.glob(os.path.join(glob.escape(folder), pattern), recursive=True):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.lexists(path):
                os.unlink(path)
    # The plugin does not check strip's exit status; neither do we.
    subprocess.run(["find", folder, "-name", "*.so", "-exec", "strip", "{}", ";"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: _slim.py SITE_PACKAGES")
    slim(sys.argv[1])
