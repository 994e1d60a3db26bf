"""Real use after a real prune (issues 3 and 4).

Each test builds (once per session) a real venv with real wheels, prunes a private copy with
the real command line (``--profile aggressive`` with verification unless the issue says
otherwise), checks the report says verification passed, then uses the pruned environment the
way an application would: a Flask request, OpenTelemetry plugin discovery through entry points,
``fs`` over ``pkg_resources``, Django's French admin, the scientific stack, boto3 presigning,
torch. The scientific stack and torch also measure the common ``find ... rm`` recipe on an
identical copy; the figures go to stdout (``-s``) and to ``/tmp/venv-prune-figures/``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import VenvFactory

VENV_PRUNE = Path(sys.executable).parent / "venv-prune"
DEV_PIP = Path(sys.executable).parent / "pip"
FIGURES = Path("/tmp/venv-prune-figures")

# Requirement lists: one pristine build each per session, shared by every test that uses it.
FLASK = ["flask"]
OTEL = ["opentelemetry-api", "opentelemetry-sdk"]
FS = ["fs", "setuptools<70"]
DJANGO = ["django"]
SCI = ["numpy", "pandas", "scipy", "scikit-learn", "matplotlib"]
BOTO = ["boto3"]
TORCH = ["torch==2.13.0"]
DEV_LEAK = ["flask", "gunicorn", "pytest", "pytest-cov", "mypy", "black", "ipython",
            "pip", "setuptools", "wheel"]

DEV_TOOLS = ["pytest", "pytest-cov", "coverage", "mypy", "black", "ipython"]
FLASK_KEEP = ["flask", "werkzeug", "jinja2", "click", "itsdangerous", "markupsafe", "blinker",
              "gunicorn", "packaging"]

RECIPE = (
    "find V -type d -name tests -o -name test | xargs rm -rf; "
    "find V -type d -name __pycache__ | xargs rm -rf; "
    "find V -type f -name '*.pyc' -o -name '*.pyo' | xargs rm -f; "
    "find V -type f -name '*.c' -o -name '*.h' | xargs rm -f; "
    "rm -rf V/lib/python*/site-packages/{pip,setuptools,wheel}* V/share"
)


# --- helpers -------------------------------------------------------------------------------

def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def prune(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_PRUNE), *args], capture_output=True, text=True,
                          timeout=timeout)


def prune_ok(env: Path, *args: str, verified: bool = True) -> dict[str, Any]:
    """Run the CLI with a JSON report; assert exit 0 (and verification passed); the report."""
    res = prune(str(env), *args, "--format", "json")
    assert res.returncode == 0, f"exit {res.returncode}\nstderr:\n{res.stderr[-6000:]}\nstdout:\n{res.stdout[-4000:]}"
    data: dict[str, Any] = json.loads(res.stdout)
    if verified:
        assert data["verification"]["status"] == "passed", data["verification"]
    return data


def site_of(env: Path) -> Path:
    return next((env / "lib").glob("python*/site-packages"))


def du(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


# Real use must not add bytecode caches to a copy whose size is measured, or make the two
# copies of a comparison differ.
QUIET_ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg"}


def py(env: Path, code: str, cwd: Path, *, extra_env: dict[str, str] | None = None,
       **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the environment's interpreter from a neutral directory."""
    return subprocess.run([str(env / "bin" / "python"), "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=900, cwd=str(cwd),
                          env={**QUIET_ENV, **(extra_env or {})}, **kw)


def use_ok(env: Path, code: str, cwd: Path, **kw: Any) -> str:
    proc = py(env, code, cwd, **kw)
    assert proc.returncode == 0, f"real use failed in {env}:\n{proc.stderr[-6000:]}"
    return proc.stdout


def record_entries_missing(site: Path) -> list[str]:
    missing = []
    for record in site.glob("*.dist-info/RECORD"):
        for line in record.read_text().splitlines():
            path = line.rsplit(",", 2)[0].strip('"')
            if path and not os.path.lexists(os.path.normpath(site / path)):
                missing.append(f"{record.parent.name}: {path}")
    return missing


def installed(site: Path) -> dict[str, str]:
    """Canonical distribution name -> version, from the dist-info directories."""
    out = {}
    for d in site.glob("*.dist-info"):
        name, _, version = d.name[: -len(".dist-info")].rpartition("-")
        out[canon(name)] = version
    return out


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def top_level_modules(site: Path) -> dict[str, set[str]]:
    """Top-level importable module name -> owning distributions, from every RECORD."""
    owners: dict[str, set[str]] = {}
    for record in site.glob("*.dist-info/RECORD"):
        dist = canon(record.parent.name[: -len(".dist-info")].rpartition("-")[0])
        for line in record.read_text().splitlines():
            path = line.rsplit(",", 2)[0].strip('"')
            if not path or path.startswith(".."):
                continue
            first, _, rest = path.partition("/")
            if first.endswith((".dist-info", ".data")) or first == "__pycache__":
                continue
            if rest:
                name = first
                if not (rest.endswith(".py") or ".so" in rest):
                    continue
            elif first.endswith(".py"):
                name = first[:-3]
            elif first.endswith(".so"):
                name = first.split(".", 1)[0]
            else:
                continue
            if _IDENT.match(name):
                owners.setdefault(name, set()).add(dist)
    return owners


_IMPORT_DRIVER = """
import json, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
names = json.load(sys.stdin)
def one(n):
    try:
        p = subprocess.run([sys.executable, "-c", "import " + n], capture_output=True,
                           text=True, timeout=300)
        return n, p.returncode == 0, (p.stderr.strip().splitlines() or [""])[-1]
    except subprocess.TimeoutExpired:
        return n, False, "timeout"
with ThreadPoolExecutor(2) as ex:
    print(json.dumps({n: [ok, err] for n, ok, err in ex.map(one, names)}))
"""


def import_each(env: Path, names: Iterable[str], cwd: Path) -> dict[str, tuple[bool, str]]:
    """Import every name in its own process of the environment's interpreter (crash-isolated)."""
    proc = subprocess.run([str(env / "bin" / "python"), "-c", _IMPORT_DRIVER],
                          input=json.dumps(sorted(names)), capture_output=True, text=True,
                          cwd=str(cwd), timeout=3600, env=QUIET_ENV)
    assert proc.returncode == 0, proc.stderr
    return {k: (v[0], v[1]) for k, v in json.loads(proc.stdout).items()}


def imports_still_work(env: Path, report: dict[str, Any], before: dict[str, tuple[bool, str]],
                       owners: dict[str, set[str]], cwd: Path) -> list[str]:
    """Modules that imported before and fail now (except those of removed distributions)."""
    removed = {canon(d["name"]) for d in report["distribution_decisions"] if d["remove"]}
    expected = [m for m, (ok, _) in before.items() if ok and not owners.get(m, set()) <= removed]
    after = import_each(env, expected, cwd)
    return [f"{m}: {after[m][1]}" for m in expected if not after[m][0]]


def run_recipe(env: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", RECIPE.replace("V", str(env))],
                          capture_output=True, text=True, timeout=3600)


def write_figures(name: str, figures: dict[str, Any]) -> None:
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n[venv-prune figures] {name}: {json.dumps(figures)}")


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


# --- Flask -------------------------------------------------------------------------------

FLASK_USE = """
import importlib.metadata as md
from flask import Flask, jsonify, render_template_string

app = Flask(__name__)

@app.route("/hello/<name>")
def hello(name):
    return jsonify(hello=name, page=render_template_string("<b>{{ n }}</b>", n=name))

r = app.test_client().get("/hello/world")
assert r.status_code == 200, r.status_code
assert r.get_json() == {"hello": "world", "page": "<b>world</b>"}, r.get_json()
print(md.version("werkzeug"), md.version("flask"))
"""


def test_flask_aggressive(venvs: VenvFactory, fresh_venv: Callable[..., Path], tmp_path: Path) -> None:
    pristine = venvs.pristine(FLASK)
    versions = installed(site_of(pristine))
    env = fresh_venv(FLASK)
    prune_ok(env, "--profile", "aggressive")
    out = use_ok(env, FLASK_USE, tmp_path).split()
    assert out == [versions["werkzeug"], versions["flask"]]


# --- OpenTelemetry -------------------------------------------------------------------------

OTEL_USE = """
import importlib.metadata as md
eps = md.entry_points(group="opentelemetry_context")
assert "contextvars_context" in eps.names, sorted(eps.names)
providers = md.entry_points(group="opentelemetry_tracer_provider")
assert "sdk_tracer_provider" in providers.names, sorted(providers.names)

from opentelemetry import context, trace
# The runtime context is chosen through the 'opentelemetry_context' entry point at import.
assert type(context._RUNTIME_CONTEXT).__name__ == "ContextVarsRuntimeContext", context._RUNTIME_CONTEXT
token = context.attach(context.set_value("k", "v"))
assert context.get_value("k") == "v"
context.detach(token)

# OTEL_PYTHON_TRACER_PROVIDER=sdk_tracer_provider: the SDK provider is loaded by entry point.
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
provider = trace.get_tracer_provider()
assert isinstance(provider, TracerProvider), type(provider)
exporter = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(exporter))
with trace.get_tracer("t").start_as_current_span("work") as span:
    span.set_attribute("x", 1)
spans = exporter.get_finished_spans()
assert [s.name for s in spans] == ["work"], spans
assert spans[0].resource.attributes["telemetry.sdk.name"] == "opentelemetry"
print("ok", md.version("opentelemetry-sdk"))
"""


def test_opentelemetry_entry_points_aggressive(fresh_venv: Callable[..., Path], tmp_path: Path) -> None:
    env = fresh_venv(OTEL)
    prune_ok(env, "--profile", "aggressive")
    proc = py(env, OTEL_USE, tmp_path, extra_env={"OTEL_PYTHON_TRACER_PROVIDER": "sdk_tracer_provider"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok"), proc.stdout
    # A missing entry point is only logged by opentelemetry, never raised: stderr must be clean.
    assert "Failed to load" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


# --- fs (pkg_resources) ----------------------------------------------------------------------

FS_USE = """
import fs
mem = fs.open_fs("mem://")
mem.makedirs("a/b")
mem.writetext("a/b/hello.txt", "bonjour")
assert mem.readtext("a/b/hello.txt") == "bonjour"
assert mem.listdir("a/b") == ["hello.txt"]
import fs.osfs, fs.memoryfs  # the namespace package declared through pkg_resources
import pkg_resources
print("ok")
"""


@pytest.mark.parametrize("profile", ["safe", "standard", "aggressive"])
def test_fs_keeps_setuptools_for_pkg_resources(profile: str, fresh_venv: Callable[..., Path],
                                               tmp_path: Path) -> None:
    env = fresh_venv(FS)
    site = site_of(env)
    assert (site / "pkg_resources").is_dir()
    data = prune_ok(env, "--profile", profile)
    _setuptools_kept_for_fs(data, site, declared=True)
    assert "ok" in use_ok(env, FS_USE, tmp_path)


def _setuptools_kept_for_fs(report: dict[str, Any], site: Path, *, declared: bool) -> None:
    decisions = {canon(d["name"]): d for d in report["distribution_decisions"]}
    st = decisions["setuptools"]
    assert not st["remove"], st
    # fs 2.4.16 declares Requires-Dist: setuptools, so the first reason found is the requirement
    # ("kept: required by fs 2.4.16 (setuptools)"); without it, the import of pkg_resources.
    assert re.search(r"\bfs\b", st["reason"]), st
    if declared:
        assert "pkg_resources" in st["reason"] or "required by fs" in st["reason"], st
    else:
        assert "pkg_resources" in st["reason"], st
    assert (site / "pkg_resources").is_dir() and list(site.glob("setuptools-*.dist-info"))
    assert (site / "pkg_resources" / "__init__.py").is_file()


@pytest.mark.parametrize("profile", ["safe", "standard", "aggressive"])
def test_fs_undeclared_pkg_resources_import_keeps_setuptools(
        profile: str, fresh_venv: Callable[..., Path], tmp_path: Path) -> None:
    """Many packages import pkg_resources without declaring setuptools: drop fs's declaration
    so that only the static import scan can keep setuptools."""
    env = fresh_venv(FS)
    site = site_of(env)
    meta = next(site.glob("fs-*.dist-info")) / "METADATA"
    text = meta.read_text()
    assert "Requires-Dist: setuptools\n" in text
    meta.write_text(text.replace("Requires-Dist: setuptools\n", ""))
    data = prune_ok(env, "--profile", profile)
    _setuptools_kept_for_fs(data, site, declared=False)
    assert "ok" in use_ok(env, FS_USE, tmp_path)


# --- Django (French admin) -------------------------------------------------------------------

DJANGO_USE = """
import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="not-secret",
    ALLOWED_HOSTS=["testserver"],
    USE_I18N=True,
    LANGUAGE_CODE="fr",
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
        "django.contrib.sessions", "django.contrib.messages", "django.contrib.staticfiles",
    ],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.locale.LocaleMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ],
    TEMPLATES=[{
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": [
            "django.template.context_processors.request",
            "django.contrib.auth.context_processors.auth",
            "django.contrib.messages.context_processors.messages",
        ]},
    }],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    STATIC_URL="/static/",
)
django.setup()

from django.contrib import admin
from django.urls import path
urlpatterns = [path("admin/", admin.site.urls)]

from django.utils import translation
translation.activate("fr")
login = translation.gettext("Log in")
required = translation.gettext("This field is required.")
assert login == "Connexion", login
assert required == "Ce champ est obligatoire.", required

import django.test
from django.core.management import call_command
call_command("migrate", verbosity=0)
client = django.test.Client(HTTP_ACCEPT_LANGUAGE="fr")
resp = client.get("/admin/login/")
assert resp.status_code == 200, resp.status_code
page = resp.content.decode()
assert "Connexion" in page and "Nom d’utilisateur" in page, page[:2000]
print(login, "|", required)
"""


def test_django_french_admin_aggressive(fresh_venv: Callable[..., Path], tmp_path: Path) -> None:
    env = fresh_venv(DJANGO)
    site = site_of(env)
    mo = sorted(p.relative_to(site) for p in site.glob("django/**/locale/fr/LC_MESSAGES/*.mo"))
    assert mo
    data = prune_ok(env, "--profile", "aggressive")
    assert (site / "django" / "test").is_dir(), "django/test is imported at run time"
    assert all((site / p).is_file() for p in mo), "French .mo catalogs removed"
    out = use_ok(env, DJANGO_USE, tmp_path)
    assert out.strip() == "Connexion | Ce champ est obligatoire.", out
    assert data["totals"]["bytes_removed"] > 0


# --- numpy / pandas / scipy / scikit-learn / matplotlib --------------------------------------

SCI_USE = """
import numpy as np, pandas as pd, scipy, scipy.linalg, scipy.stats, scipy.optimize
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
import sys

X, y = load_iris(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
clf = LogisticRegression(max_iter=1000).fit(Xtr, ytr)
score = clf.score(Xte, yte)
assert score > 0.9, score

df = pd.DataFrame({"a": np.arange(10.0), "b": np.linspace(0, 1, 10)})
desc = df.describe()
assert desc.loc["count", "a"] == 10 and desc.loc["mean", "a"] == 4.5, desc

a = np.array([[4.0, 1.0], [1.0, 3.0]])
lu, piv = scipy.linalg.lu_factor(a)
x = scipy.linalg.lu_solve((lu, piv), [1.0, 2.0])
assert np.allclose(a @ x, [1.0, 2.0])
assert np.allclose(scipy.linalg.inv(a) @ a, np.eye(2))
assert abs(scipy.stats.norm.cdf(0) - 0.5) < 1e-12
assert abs(scipy.optimize.minimize_scalar(lambda t: (t - 2) ** 2).x - 2) < 1e-4

fig, ax = plt.subplots()
ax.plot(df["a"], df["b"], label="line")
ax.set_title("pruned")
ax.legend()
out = sys.argv[1]
fig.savefig(out, format="png")
with open(out, "rb") as fh:
    assert fh.read(8) == b"\\x89PNG\\r\\n\\x1a\\n"
import pandas.testing, numpy.testing
print("ok", round(score, 3))
"""


def _sci_use(env: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "sci_use.py"
    script.write_text(textwrap.dedent(SCI_USE))
    return subprocess.run([str(env / "bin" / "python"), str(script), str(tmp_path / "plot.png")],
                          capture_output=True, text=True, cwd=str(tmp_path), timeout=900,
                          env={**QUIET_ENV, "MPLCONFIGDIR": str(tmp_path / "mpl")})


def _compare_with_recipe(name: str, reqs: list[str], use: Callable[[Path], subprocess.CompletedProcess[str]],
                         fresh_venv: Callable[..., Path], tmp_path: Path) -> None:
    """Aggressive on one copy, the recipe on an identical copy: aggressive keeps every import
    and the real use working, and removes more bytes than the recipe."""
    env = fresh_venv(reqs)
    recipe_env = fresh_venv(reqs)
    site = site_of(env)
    owners = top_level_modules(site)
    before_imports = import_each(env, owners, tmp_path)
    pre = use(env)
    assert pre.returncode == 0, f"real use fails even before pruning:\n{pre.stderr[-4000:]}"
    size_before = du(env)
    recipe_before = du(recipe_env)

    t0 = time.monotonic()
    data = prune_ok(env, "--profile", "aggressive")
    seconds = time.monotonic() - t0
    size_after = du(env)

    broken = imports_still_work(env, data, before_imports, owners, tmp_path)
    assert broken == [], broken
    res = use(env)
    assert res.returncode == 0, res.stderr[-6000:]

    recipe = run_recipe(recipe_env)
    recipe_after = du(recipe_env)
    recipe_use = use(recipe_env)
    recipe_broken = [m for m, (ok, _) in import_each(
        recipe_env, [m for m, (ok, _) in before_imports.items() if ok], tmp_path).items() if not ok]

    stripped = sum(s.get("bytes_saved", 0) for s in data["stripped"])
    figures = {
        "requirements": reqs,
        "aggressive": {
            "du_before": size_before, "du_after": size_after, "du_removed": size_before - size_after,
            "report_bytes_before": data["totals"]["bytes_before"],
            "report_bytes_removed": data["totals"]["bytes_removed"],
            "report_percent_removed": data["totals"]["percent_removed"],
            "stripped_files": len(data["stripped"]), "stripped_bytes_saved": stripped,
            "distributions_removed": [d["name"] for d in data["distribution_decisions"] if d["remove"]],
            "timings": data["timings"], "wall_seconds": round(seconds, 1),
            "top_level_modules_checked": sum(1 for ok, _ in before_imports.values() if ok),
            "by_rule": {r["rule"]: r["bytes"] for r in data["rules"]},
            "protected": {p["saved_by"]: p["bytes"] for p in data["protected"]},
            "kept_setuptools_because": next((d["reason"] for d in data["distribution_decisions"]
                                             if d["name"] == "setuptools"), None),
        },
        "recipe": {
            "du_before": recipe_before, "du_after": recipe_after,
            "du_removed": recipe_before - recipe_after, "exit": recipe.returncode,
            "real_use_works": recipe_use.returncode == 0,
            "real_use_error": (recipe_use.stderr.strip().splitlines() or [""])[-1]
            if recipe_use.returncode else "",
            "imports_broken": recipe_broken,
        },
    }
    write_figures(name, figures)
    print(f"[{name}] aggressive removed {mib(size_before - size_after)} of {mib(size_before)} "
          f"(stripping saved {mib(stripped)}); recipe removed {mib(recipe_before - recipe_after)} "
          f"of {mib(recipe_before)}; recipe breaks use: {recipe_use.returncode != 0}")
    assert size_before - size_after > recipe_before - recipe_after, figures


@pytest.mark.slow
def test_scientific_stack_aggressive_vs_recipe(fresh_venv: Callable[..., Path], tmp_path: Path) -> None:
    _compare_with_recipe("sci", SCI, lambda e: _sci_use(e, tmp_path), fresh_venv, tmp_path)


# --- boto3 ------------------------------------------------------------------------------------

BOTO_USE = """
import boto3
s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="AKIDEXAMPLE",
                  aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
url = s3.generate_presigned_url("get_object", Params={"Bucket": "my-bucket", "Key": "a/b.txt"},
                                ExpiresIn=300)
assert url.startswith("https://my-bucket.s3."), url
assert "a/b.txt" in url and ("X-Amz-Signature=" in url or "Signature=" in url), url
ddb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
assert "PutItem" in ddb.meta.service_model.operation_names
boto3.resource("s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y").Bucket("b")
import botocore.httpsession, os
assert os.path.isfile(botocore.httpsession.get_cert_path(True))
print("ok")
"""


@pytest.mark.slow
def test_boto3_presigned_url_aggressive(fresh_venv: Callable[..., Path], tmp_path: Path) -> None:
    env = fresh_venv(BOTO)
    data = prune_ok(env, "--profile", "aggressive")
    assert "ok" in use_ok(env, BOTO_USE, tmp_path)
    assert (site_of(env) / "botocore" / "cacert.pem").is_file()
    write_figures("boto3", {"report_bytes_before": data["totals"]["bytes_before"],
                            "report_bytes_removed": data["totals"]["bytes_removed"],
                            "stripped_bytes_saved": sum(x["bytes_saved"] for x in data["stripped"]),
                            "timings": data["timings"]})


# --- torch ------------------------------------------------------------------------------------

def _torch_use(env: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    code = """
import torch
v = torch.ones(3) @ torch.ones(3)
assert v.item() == 3.0, v
torch.manual_seed(0)
lin = torch.nn.Linear(4, 2)
x = torch.randn(5, 4, requires_grad=True)
y = lin(x)
assert y.shape == (5, 2), y.shape
y.sum().backward()
assert x.grad is not None and x.grad.shape == (5, 4)
print("ok", torch.__version__)
"""
    return py(env, code, tmp_path)


@pytest.mark.slow
def test_torch_aggressive_vs_recipe(fresh_venv: Callable[..., Path], tmp_path: Path) -> None:
    _compare_with_recipe("torch", TORCH, lambda e: _torch_use(e, tmp_path), fresh_venv, tmp_path)


# --- Flask dev leak (issue 4) -----------------------------------------------------------------

CLOSURE = """
import json, sys
import importlib.metadata as md
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as c
dists = {c(d.metadata["Name"]): d for d in md.distributions()}
def reqs(name):
    out = []
    for r in dists[name].requires or []:
        req = Requirement(r)
        out.append(req)
    return out
def active(req, extra):
    return req.marker is None or req.marker.evaluate({"extra": extra})
roots = json.loads(sys.argv[1])
seen, todo = set(), list(roots)
while todo:
    n = todo.pop()
    if n in seen or n not in dists:
        continue
    seen.add(n)
    rs = reqs(n)
    extras = set(dists[n].metadata.get_all("Provides-Extra") or [])
    picked = [r for r in rs if active(r, "")]
    for e in extras:  # an extra counts as active when all its requirements are installed
        er = [r for r in rs if not active(r, "") and active(r, e)]
        if er and all(c(r.name) in dists for r in er):
            picked += er
    todo += [c(r.name) for r in picked]
print(json.dumps({"closure": sorted(seen), "all": sorted(dists)}))
"""


def _flask_gunicorn_app_ok(env: Path, tmp_path: Path) -> None:
    use_ok(env, FLASK_USE, tmp_path)
    proc = py(env, "import gunicorn.app.wsgiapp, gunicorn.workers.sync; print('ok')", tmp_path)
    assert proc.returncode == 0, proc.stderr


def _dev_leak_graph(venvs: VenvFactory, tmp_path: Path) -> tuple[set[str], set[str]]:
    """(what flask + gunicorn need, every distribution) computed independently of venv-prune.

    gunicorn 27 no longer requires packaging (only its gevent/testing extras do), but the issue
    lists packaging as kept and venv-prune keeps it because gunicorn/workers/ggevent.py
    imports it; it counts as needed here."""
    pristine = venvs.pristine(DEV_LEAK)
    code = CLOSURE.replace("sys.argv[1]", repr(json.dumps(["flask", "gunicorn"])))
    graph = json.loads(use_ok(pristine, code, tmp_path))
    needed, everything = set(graph["closure"]) | {"packaging"}, set(graph["all"])
    assert set(FLASK_KEEP) <= needed
    assert set(DEV_TOOLS) | {"pip", "setuptools", "wheel"} <= everything - needed
    return needed, everything


def test_dev_leak_standard_with_roots(venvs: VenvFactory, fresh_venv: Callable[..., Path],
                                      tmp_path: Path) -> None:
    needed, everything = _dev_leak_graph(venvs, tmp_path)
    must_go = everything - needed
    env = fresh_venv(DEV_LEAK)
    site = site_of(env)

    data = prune_ok(env, "--profile", "standard", "--root", "flask", "--root", "gunicorn")
    decisions = {canon(d["name"]): d for d in data["distribution_decisions"]}
    removed = {n for n, d in decisions.items() if d["remove"]}
    kept = {n: d["reason"] for n, d in decisions.items() if not d["remove"]}
    assert not removed & needed, sorted(removed & needed)
    # The tools, pip, setuptools and wheel, and every exclusive dependency: guarded or
    # TYPE_CHECKING-only imports (werkzeug/testapp.py's 'try: import pkg_resources',
    # flask/config.py's typing_extensions) must not keep anything.
    assert set(DEV_TOOLS) | {"pip", "setuptools", "wheel"} <= removed
    assert removed == must_go, {n: kept[n] for n in must_go - removed}
    left = installed(site)
    assert set(left) == set(decisions) - removed
    for name in FLASK_KEEP:
        assert name in left, name
    for name in removed:
        assert not list(site.glob(f"{name.replace('-', '_')}-*.dist-info")), name
    for script in ("pytest", "py.test", "mypy", "black", "ipython", "pip", "pip3", "coverage"):
        assert not (env / "bin" / script).exists(), script
    for script in ("flask", "gunicorn"):
        assert (env / "bin" / script).exists(), script

    _flask_gunicorn_app_ok(env, tmp_path)
    quiet = py(env, "pass", tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    check = subprocess.run([str(DEV_PIP), "--python", str(env / "bin" / "python"), "check"],
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    assert record_entries_missing(site) == []
    print(f"\n[dev-leak --root flask --root gunicorn] removed {mib(data['totals']['bytes_removed'])} "
          f"of {mib(data['totals']['bytes_before'])} ({data['totals']['percent_removed']}%), "
          f"{len(removed)} distributions; kept beyond the roots' closure: "
          f"{sorted(set(left) - needed)}")


def test_dev_leak_without_roots_dry_run_lists_dev_tools(fresh_venv: Callable[..., Path],
                                                        tmp_path: Path) -> None:
    """Installed by name (pip marked them REQUESTED), the tools are the user's word: standard
    keeps them and lists each with its size and the option that removes it; aggressive
    removes them, and says so (issue 15, kind D)."""
    env = fresh_venv(DEV_LEAK)
    site = site_of(env)
    dry = prune(str(env), "--profile", "standard", "--dry-run", "--format", "json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    decisions = {canon(d["name"]): d for d in plan["distribution_decisions"]}
    named = [t for t in DEV_TOOLS if t in DEV_LEAK]  # coverage came with pytest-cov
    for tool in named:
        d = decisions[tool]
        assert not d["remove"] and d["bytes"] > 0 and d["requested"], d
        assert d["remove_with"] == f"--remove-dist {tool}", d
    assert decisions["coverage"]["reason"].startswith("kept: required by pytest-cov")
    text = prune(str(env), "--profile", "standard", "--dry-run")
    assert text.returncode == 0, text.stderr
    for tool in named:
        line = next((ln for ln in text.stdout.splitlines() if ln.startswith(f"  ? {tool} ")), None)
        assert line and re.search(r"\(\d+(\.\d)? (B|KiB|MiB|GiB)\)", line), (tool, text.stdout)
        assert f"--remove-dist {tool} removes it" in line, line

    data = prune_ok(env, "--profile", "aggressive")
    left = installed(site)
    for tool in DEV_TOOLS:
        assert tool not in left, tool
    warned = {d["message"].split(" ", 1)[0] for d in data["diagnostics"]
              if d["code"] == "requested-removed"}
    assert set(named) <= warned, data["diagnostics"]
    for script in ("pytest", "mypy", "black", "ipython", "coverage"):
        assert not (env / "bin" / script).exists(), script
    for name in FLASK_KEEP:
        assert name in left, name
    _flask_gunicorn_app_ok(env, tmp_path)
    quiet = py(env, "pass", tmp_path)
    assert quiet.stderr == "", quiet.stderr
    assert record_entries_missing(site) == []
    dev_bytes = sum(decisions[t]["bytes"] for t in DEV_TOOLS)
    print(f"\n[dev-leak, no root] dev tools {mib(dev_bytes)}; aggressive removed "
          f"{mib(data['totals']['bytes_removed'])} of {mib(data['totals']['bytes_before'])}")
