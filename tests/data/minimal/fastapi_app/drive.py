"""Smoke test for venv-prune's minimal profile (tests/test_minimal.py).

Starts ``app:app`` (next to this file) under uvicorn in a child process on a free port,
requests one endpoint, checks the JSON and stops the server. Exits 0 only if all of it worked.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]

server = subprocess.Popen([
    sys.executable, "-m", "uvicorn", "app:app", "--app-dir", HERE,
    "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
])
try:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/items/7?q=x", timeout=5) as resp:
                body = json.load(resp)
            break
        except OSError:
            if server.poll() is not None:
                sys.exit(f"drive.py: the server exited with {server.returncode} before answering")
            if time.monotonic() > deadline:
                sys.exit("drive.py: the server did not answer within 60 s")
            time.sleep(0.2)
    if body != {"id": 7, "name": "item-7", "q": "x"}:
        sys.exit(f"drive.py: unexpected answer {body!r}")
    print("drive.py: ok", body)
finally:
    server.terminate()
    server.wait(timeout=30)
