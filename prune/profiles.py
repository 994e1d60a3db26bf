"""Load, merge and validate profiles: TOML data files, built in or the user's own.

A profile is a list of rules plus settings. Built-in profiles live in ``prune/profiles/``
(the repository's ``profiles/`` directory) and extend one another: safe <- standard <-
aggressive <- minimal. A user profile is a TOML file with ``extends = "standard"`` or a
``[tool.venv-prune]`` table in a pyproject.toml. Every problem in a profile is collected and
reported in one :class:`~prune.errors.ProfileError`.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from pathspec import PathSpec

from .errors import ProfileError
from .evidence import SiblingReader

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "Rule",
    "Profile",
    "Protection",
    "OptionalData",
    "Knowledge",
    "BUILTIN_PROFILES",
    "load_profile",
    "list_profiles",
    "load_knowledge",
    "make_rule",
    "compile_patterns",
    "find_pyproject",
    "pattern_problem",
]

BUILTIN_PROFILES = ("safe", "standard", "aggressive", "minimal")
_SCOPES = ("any", "site", "root")
_BYTECODE = ("drop", "keep", "compile")
_SETTINGS: dict[str, type] = {
    "remove_distributions": list,
    "remove_dev_tools": bool,
    "lists_remove_requested": bool,
    "keep_what_dev_tools_run": bool,
    "strip": bool,
    "bytecode": str,
    "optional_data": bool,
    "requires_trace": bool,
    "trace_minimal": bool,
}


def compile_patterns(lines: list[str] | tuple[str, ...]) -> PathSpec[Any]:
    """Compile gitwildmatch lines. pathspec 1.x calls the style "gitignore" and deprecates
    the old "gitwildmatch" name; older releases only know the old one."""
    try:
        return PathSpec.from_lines("gitignore", list(lines))
    except KeyError:  # pathspec < 1.0
        return PathSpec.from_lines("gitwildmatch", list(lines))


def pattern_problem(pattern: object) -> Optional[str]:
    """What is wrong with one gitwildmatch pattern, or None when pathspec can use it.

    pathspec reads an unclosed ``[`` as a literal bracket, where git's wildmatch makes the
    whole pattern match nothing (``dowild`` returns ``WM_ABORT_ALL``); either way the user
    meant a class, so it is refused rather than silently matching nothing (issue 16).
    A range that runs backwards (``[z-a]``) makes the regex engine fail (``re.error``).
    """
    if not isinstance(pattern, str):
        return f"{pattern!r} is not a string"
    if not pattern.strip():
        return "an empty pattern matches nothing"
    unclosed = _unclosed_bracket(pattern)
    if unclosed is not None:
        return f"'[' at position {unclosed} is never closed (write '\\[' for a literal bracket)"
    try:
        compile_patterns([pattern])
    except re.error as exc:
        return f"not a valid pattern ({exc.msg})"
    except (ValueError, TypeError) as exc:
        return f"not a valid pattern ({exc})"
    return None


def _unclosed_bracket(pattern: str) -> Optional[int]:
    """The position of a ``[`` that opens a class no ``]`` closes (gitwildmatch rules: a
    ``]`` right after ``[``, ``[!`` or ``[^`` is a member, a backslash escapes), else None."""
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            if j >= n:
                return i
            i = j + 1
            continue
        i += 1
    return None


def _builtin_bytes(filename: str) -> bytes:
    """A data file shipped with the package (``profiles/`` in the repository, installed as
    the ``prune.profile_data`` package). importlib.resources also reads it from a zipapp."""
    from importlib import resources

    try:
        return resources.files("prune.profile_data").joinpath(filename).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        # A source checkout used without installing: the data sits at the repository root.
        return (Path(__file__).resolve().parent.parent / "profiles" / filename).read_bytes()


def _builtin_toml(filename: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = tomllib.loads(_builtin_bytes(filename).decode("utf-8"))
        return data
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - our own data
        raise ProfileError(f"built-in {filename} is not valid TOML ({exc}); reinstall venv-prune") from exc


@dataclass(frozen=True)
class Rule:
    """One removal or keep rule.

    ``patterns`` are gitwildmatch lines (``!`` negates within the rule); ``scope`` says which
    paths they see: ``site`` (relative to site-packages), ``root`` (relative to the
    environment root, files outside site-packages) or ``any``. ``import_check`` keeps a
    matched directory that kept code imports. ``evidence`` (a rule keyed on a file type or a
    directory name) keeps a matched file that its distribution's kept code reads at run time
    (see :mod:`prune.evidence`). ``profile`` names where the rule came from.
    """

    id: str
    action: str
    patterns: tuple[str, ...]
    reason: str
    scope: str = "any"
    import_check: bool = False
    profile: str = ""
    spec: PathSpec[Any] = field(compare=False, repr=False, default=None)  # type: ignore[arg-type]
    evidence: bool = False


def make_rule(
    id: str, action: str, patterns: tuple[str, ...] | list[str], reason: str, *,
    scope: str = "any", import_check: bool = False, profile: str = "", evidence: bool = False,
) -> Rule:
    """Build a rule, compiling its patterns.

    :raises ProfileError: a pattern is not valid gitwildmatch, or action/scope is unknown.
    """
    problems: list[str] = []
    if action not in ("remove", "keep"):
        problems.append(f"rule {id!r}: action must be 'remove' or 'keep', not {action!r}")
    if scope not in _SCOPES:
        problems.append(f"rule {id!r}: scope must be one of {', '.join(_SCOPES)}, not {scope!r}")
    for pattern in patterns:
        problem = pattern_problem(pattern)
        if problem is not None:
            problems.append(f"rule {id!r}: bad pattern {pattern!r}: {problem}")
    spec: PathSpec[Any] = PathSpec([])
    if not problems:
        try:
            spec = compile_patterns(list(patterns))
        except (ValueError, TypeError, re.error) as exc:  # pragma: no cover - pattern_problem saw each
            problems.append(f"rule {id!r}: bad patterns {list(patterns)!r}: {exc}")
    if problems:
        raise ProfileError("; ".join(problems))
    return Rule(id, action, tuple(patterns), reason, scope, import_check, profile, spec, evidence)


@dataclass(frozen=True)
class Profile:
    """A resolved profile: rules in order (parents first) and merged settings."""

    name: str
    description: str
    chain: tuple[str, ...]
    rules: tuple[Rule, ...]
    remove_distributions: tuple[str, ...] = ()
    remove_dev_tools: bool = False
    lists_remove_requested: bool = False
    keep_what_dev_tools_run: bool = True
    strip: bool = False
    bytecode: str = "drop"
    optional_data: bool = False
    requires_trace: bool = False
    trace_minimal: bool = False
    source: str = ""

    def with_rules(self, extra: tuple[Rule, ...]) -> Profile:
        return replace(self, rules=self.rules + extra)


@dataclass(frozen=True)
class Protection:
    id: str
    patterns: tuple[str, ...]
    reason: str
    source: str
    when: tuple[str, ...]
    spec: PathSpec[Any] = field(compare=False, repr=False, default=None)  # type: ignore[arg-type]
    #: "site": patterns are relative to site-packages; "root": to the environment root, for
    #: files outside site-packages (``share/jupyter``).
    scope: str = "site"


@dataclass(frozen=True)
class OptionalData:
    id: str
    under: str
    keep: tuple[str, ...]
    reason: str
    source: str


@dataclass(frozen=True)
class Knowledge:
    protect: tuple[Protection, ...]
    optional: tuple[OptionalData, ...]
    dev_tools: tuple[tuple[str, str], ...]  # (canonical name or fnmatch pattern, what it is)
    dev_extras: tuple[str, ...] = ()  # extras installation alone does not activate ("tests")
    readers: tuple[SiblingReader, ...] = ()  # code that reads the file beside its caller
    # Read at run time when present, but the reader copes without them: evidence of the
    # read does not keep them (jedi's bundled typeshed).
    read_optional: tuple[Protection, ...] = ()
    # Distributions that read files of a type in EVERY distribution while they are kept (mypy
    # reads all stubs): ``when`` names the readers, ``patterns`` the files.
    environment_readers: tuple[Protection, ...] = ()
    # Code that names files to write them (code generators): no evidence of a read (torchgen).
    writers: tuple[Protection, ...] = ()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
            return data
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such profile file; pass a built-in name "
                           f"({', '.join(BUILTIN_PROFILES)}) or an existing .toml file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML ({exc}); fix the file") from exc
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read ({exc.strerror})") from exc


def _parse(data: dict[str, Any], origin: str, problems: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    known = {"name", "description", "extends", "settings", "rule"}
    for key in sorted(set(data) - known):
        problems.append(f"{origin}: unknown key {key!r} (expected one of {', '.join(sorted(known))})")
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        problems.append(f"{origin}: [settings] must be a table")
        settings = {}
    for key, value in settings.items():
        expected = _SETTINGS.get(key)
        if expected is None:
            problems.append(f"{origin}: unknown setting {key!r} (known: {', '.join(sorted(_SETTINGS))})")
        elif not isinstance(value, expected):
            problems.append(f"{origin}: setting {key!r} must be a {expected.__name__}")
    if "bytecode" in settings and settings["bytecode"] not in _BYTECODE:
        problems.append(f"{origin}: bytecode must be one of {', '.join(_BYTECODE)}")
    rules = data.get("rule", [])
    if not isinstance(rules, list):
        problems.append(f"{origin}: 'rule' must be an array of tables ([[rule]])")
        rules = []
    for i, rule in enumerate(rules):
        where = f"{origin}: rule #{i + 1}"
        if not isinstance(rule, dict):
            problems.append(f"{where}: must be a table")
            continue
        if not isinstance(rule.get("id"), str) or not rule.get("id"):
            problems.append(f"{where}: needs a string 'id'")
        if rule.get("enabled", True) is False:
            continue
        pats = rule.get("patterns")
        if not isinstance(pats, list) or not all(isinstance(p, str) for p in pats) or not pats:
            problems.append(f"{where} ({rule.get('id')}): 'patterns' must be a non-empty list of "
                            f"strings, not {pats!r}")
        unknown = set(rule) - {"id", "action", "patterns", "reason", "scope", "import_check", "evidence",
                               "enabled"}
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return settings, [r for r in rules if isinstance(r, dict)]


def _load_data(
    ref: str, *, base: Optional[Path], seen: tuple[str, ...]
) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    """Return the chain of (profile name, raw data), parents first."""
    if ref in BUILTIN_PROFILES and not ref.endswith(".toml"):
        path = Path(f"{ref}.toml")
        data = _builtin_toml(f"{ref}.toml")
        name = ref
        source = f"built-in:{ref}"
    else:
        path = Path(ref)
        if base is not None and not path.is_absolute():
            path = base / path
        if path.suffix != ".toml":
            raise ProfileError(
                f"unknown profile {ref!r}; use one of {', '.join(BUILTIN_PROFILES)} "
                "or a path to a .toml profile file"
            )
        data = _read_toml(path)
        if path.name == "pyproject.toml":
            tool = data.get("tool", {}).get("venv-prune")
            if not isinstance(tool, dict):
                raise ProfileError(f"{path}: no [tool.venv-prune] table; add one or pass a profile file")
            data = tool
        name = str(data.get("name") or path.stem)
        source = str(path)
    key = str(path.resolve()) if not source.startswith("built-in") else source
    if key in seen:
        raise ProfileError(f"profile {name!r} extends itself (via {' -> '.join(seen)}); fix 'extends'")
    parent = data.get("extends")
    chain: list[tuple[str, dict[str, Any]]] = []
    if parent is not None:
        if not isinstance(parent, str):
            raise ProfileError(f"{source}: 'extends' must be a profile name or path")
        chain, _ = _load_data(parent, base=path.parent, seen=seen + (key,))
    chain.append((name, data))
    return chain, source


def find_pyproject(start: Path) -> Optional[Path]:
    """The closest ``pyproject.toml`` at or above ``start`` that has a ``[tool.venv-prune]``
    table, or None. A pyproject.toml without one is passed over, as ruff passes over one
    without ``[tool.ruff]``; a file that names venv-prune is parsed, so a broken one is an
    error (:class:`ProfileError`), not silently ignored.
    """
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        try:
            text = candidate.read_bytes()
        except OSError:  # absent, unreadable or a directory: nothing to find here
            continue
        if b"venv-prune" not in text:
            continue
        tool = _read_toml(candidate).get("tool", {})
        if isinstance(tool, dict) and isinstance(tool.get("venv-prune"), dict):
            return candidate
    return None


def load_profile(ref: str = "standard") -> Profile:
    """Resolve a profile by built-in name, ``.toml`` path, or ``pyproject.toml`` path.

    Child rules with the same id replace the parent's (``enabled = false`` disables one);
    settings merge, child over parent.

    :raises ProfileError: unknown name, unreadable or malformed file (every problem listed).
    """
    chain, source = _load_data(ref, base=None, seen=())
    problems: list[str] = []
    settings: dict[str, Any] = {}
    rules: dict[str, Rule] = {}
    order: list[str] = []
    description = ""
    for name, data in chain:
        sets, raw_rules = _parse(data, name, problems)
        settings.update(sets)
        description = str(data.get("description", description))
        for raw in raw_rules:
            rid = str(raw.get("id", ""))
            if raw.get("enabled", True) is False:
                rules.pop(rid, None)
                continue
            pats = raw.get("patterns")
            if not isinstance(pats, list) or not all(isinstance(p, str) for p in pats):
                continue  # _parse reported it
            try:
                rule = make_rule(
                    rid, str(raw.get("action", "remove")), list(raw.get("patterns") or []),
                    str(raw.get("reason", "")), scope=str(raw.get("scope", "any")),
                    import_check=bool(raw.get("import_check", False)), profile=name,
                    evidence=bool(raw.get("evidence", False)),
                )
            except ProfileError as exc:
                problems.append(f"{name}: {exc}")
                continue
            if rid not in rules:
                order.append(rid)
            rules[rid] = rule
    if problems:
        raise ProfileError("; ".join(problems))
    final = chain[-1][0]
    return Profile(
        name=final,
        description=description,
        chain=tuple(n for n, _ in chain),
        rules=tuple(rules[r] for r in order if r in rules),
        remove_distributions=tuple(settings.get("remove_distributions", ())),
        remove_dev_tools=bool(settings.get("remove_dev_tools", False)),
        lists_remove_requested=bool(settings.get("lists_remove_requested", False)),
        keep_what_dev_tools_run=bool(settings.get("keep_what_dev_tools_run", True)),
        strip=bool(settings.get("strip", False)),
        bytecode=str(settings.get("bytecode", "drop")),
        optional_data=bool(settings.get("optional_data", False)),
        requires_trace=bool(settings.get("requires_trace", False)),
        trace_minimal=bool(settings.get("trace_minimal", False)),
        source=source,
    )


def list_profiles() -> list[tuple[str, str]]:
    """Built-in profiles as (name, description), in order of increasing reach."""
    return [(n, load_profile(n).description) for n in BUILTIN_PROFILES]


def load_knowledge() -> Knowledge:
    """The knowledge base (protected data, optional data) and the development-tool list."""
    data = _builtin_toml("knowledge.toml")
    protect = tuple(
        Protection(
            id=str(p["id"]), patterns=tuple(p["patterns"]), reason=str(p.get("reason", "")),
            source=str(p.get("source", "")), when=tuple(p.get("when", ())),
            spec=compile_patterns(p["patterns"]), scope=str(p.get("scope", "site")),
        )
        for p in data.get("protect", [])
    )
    readers = tuple(
        SiblingReader(id=str(r["id"]), call=str(r["call"]), suffix=str(r["suffix"]),
                      reason=str(r.get("reason", "")), source=str(r.get("source", "")))
        for r in data.get("reads_beside", [])
    )
    optional = tuple(
        OptionalData(
            id=str(o["id"]), under=str(o["under"]).rstrip("/") + "/", keep=tuple(o.get("keep", ())),
            reason=str(o.get("reason", "")), source=str(o.get("source", "")),
        )
        for o in data.get("optional", [])
    )
    dev_tools: tuple[tuple[str, str], ...] = ()
    dev = _builtin_toml("devtools.toml")
    if dev:
        tools: list[tuple[str, str]] = []
        for entry in dev.get("tool", []):
            if isinstance(entry, dict) and "name" in entry:
                tools.append((str(entry["name"]), str(entry.get("reason", "development tool"))))
        dev_tools = tuple(tools)
    dev_extras = tuple(str(x) for x in (dev or {}).get("extras", ()))
    read_optional, writers = (tuple(
        Protection(
            id=str(p["id"]), patterns=tuple(p["patterns"]), reason=str(p.get("reason", "")),
            source=str(p.get("source", "")), when=(), spec=compile_patterns(p["patterns"]),
        )
        for p in data.get(table, [])
    ) for table in ("read_optional", "writes_only"))
    environment_readers = tuple(
        Protection(
            id=str(p["id"]), patterns=tuple(p["patterns"]), reason=str(p.get("reason", "")),
            source=str(p.get("source", "")), when=tuple(p["readers"]), spec=compile_patterns(p["patterns"]),
        )
        for p in data.get("reads_environment", [])
    )
    return Knowledge(protect=protect, optional=optional, dev_tools=dev_tools, dev_extras=dev_extras,
                     readers=readers, read_optional=read_optional, environment_readers=environment_readers,
                     writers=writers)
