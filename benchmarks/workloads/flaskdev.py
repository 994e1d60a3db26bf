"""Workload for the `flaskdev` environment: a request through Flask's test client."""

# ruff: noqa: E402 - the sys.path guard below must run before the imports it protects.
import os
import sys

# This file is named after the distribution it exercises (django.py, torch.py, ...): drop its
# own directory from sys.path so `import django` finds the installed package, not this script.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

from flask import Flask, jsonify


def main() -> int:
    app = Flask("bench")

    @app.get("/hello/<name>")
    def hello(name: str):
        return jsonify(greeting=f"hello {name}")

    with app.test_client() as client:
        resp = client.get("/hello/bench")
    assert resp.status_code == 200 and resp.get_json() == {"greeting": "hello bench"}, resp.data
    print("flaskdev ok", resp.get_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
