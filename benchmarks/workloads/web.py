"""Workload for the `web` environment: a real HTTP request answered by uvicorn.

Writes a small FastAPI app (pydantic model, SQLAlchemy query on in-memory SQLite) to a
temporary directory, starts uvicorn in a subprocess on a free loopback port, GETs an
endpoint with urllib, checks the JSON, and stops the server. Exit 0 on success.
"""

# ruff: noqa: E402 - the sys.path guard below must run before the imports it protects.
import os
import sys

# This file is named after the distribution it exercises (django.py, torch.py, ...): drop its
# own directory from sys.path so `import django` finds the installed package, not this script.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import json
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

APP = '''
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import create_engine, text

app = FastAPI()
engine = create_engine("sqlite://")


class Item(BaseModel):
    id: int
    name: str
    total: int


@app.get("/items/{item_id}", response_model=Item)
def read_item(item_id: int) -> Item:
    with engine.connect() as conn:
        total = conn.execute(text("SELECT :a + :b"), {"a": item_id, "b": 40}).scalar_one()
    return Item(id=item_id, name="widget", total=total)
'''


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "benchapp.py").write_text(APP)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "benchapp:app", "--app-dir", tmp,
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/items/2", timeout=5) as r:
                        body = json.loads(r.read())
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        print("server did not answer", file=sys.stderr)
                        return 1
                    time.sleep(0.1)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
    assert body == {"id": 2, "name": "widget", "total": 42}, body
    print("web ok", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
