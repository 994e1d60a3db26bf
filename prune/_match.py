"""Matching paths against rules: which rule of an ordered list claims a path, and fast.

A rule is a set of gitwildmatch patterns that pathspec compiles to regexes. Asking every
file of a 100k-file environment every rule's regex was the largest cost of planning: the
regexes pathspec writes for floating patterns (``tests/``, ``*.pyc``) start with
``(?:.+/)?``, which the backtracking engine retries at every character of the path.

Most patterns in practice are one of three shapes, and each asks a question about single
path components that a dict answers:

- ``name/`` — a directory called ``name`` anywhere (any component but the last);
- ``name`` — a file or directory called ``name`` anywhere (any component);
- ``*.ext`` — a component ending in ``.ext``.

Patterns anchored at the root (``/certifi/cacert.pem``) can only match a path whose first
component is their first literal, so their regex runs only for such paths. Floating
patterns that start with a literal directory (``**/bin/test_*``) can only match a path with
such a directory, so their regex runs only for paths under one. Anything else
(``foo*/``, negations) is asked as before. The shapes are recognised from the regex pathspec
itself wrote, never from the pattern text, so pathspec's reading of a pattern (escapes,
``**``, a leading ``/``) is the one that counts; a regex in any other form is simply asked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Optional

from .profiles import Protection, Rule, make_rule

__all__ = ["Matcher", "ProtectionMatcher", "FirstMatch"]

# The pieces of pathspec's regexes (named groups already made non-capturing), in the forms
# its gitignore style ("/" and "(?:/|$)" tails) and its older gitwildmatch style ("/.*$",
# "(?:/.*)?$" in 0.12; "(?:/)", "(?:(?:/)|$)" in 1.x) write them.
_FLOATING = r"\^\(\?:\.\+/\)\?"
_LITERAL = r"((?:[A-Za-z0-9_]|\\[.\-])+)"
_DIR_TAIL = r"(?:/|\(\?:/\)|/\.\*\$)"
_ANY_TAIL = r"(?:\(\?:\(\?:/\)\|\$\)|\(\?:/\|\$\)|\(\?:/\.\*\)\?\$)"
_DIR_SHAPE = re.compile(_FLOATING + _LITERAL + _DIR_TAIL)
_ANY_SHAPE = re.compile(_FLOATING + _LITERAL + _ANY_TAIL)
_EXT_SHAPE = re.compile(_FLOATING + r"\[\^/\]\*" + r"(\\\.(?:[A-Za-z0-9_]|\\[.\-])+)" + _ANY_TAIL)
# Anchored: "^lit" followed by "/" or a group that demands "/" or the end of the path.
_ANCHORED_SHAPE = re.compile(r"\^" + _LITERAL + r"(?=/|\(\?:\(\?:/\)\||\(\?:/)")
# Floating under a literal directory: "^(?:.+/)?lit/" and more.
_UNDER_SHAPE = re.compile(_FLOATING + _LITERAL + r"/(?=.)")


def _unescape(literal: str) -> str:
    return literal.replace("\\", "")


def _pattern_regexes(rule: Rule) -> Optional[list[str]]:
    """The regex of each include pattern, named groups made plain; None if the rule has a
    negation or a pattern pathspec compiled without a regex."""
    parts: list[str] = []
    for pat in rule.spec.patterns:
        regex = getattr(pat, "regex", None)
        if pat.include is None:
            continue
        if not pat.include or regex is None:
            return None
        parts.append(re.sub(r"\(\?P<\w+>", "(?:", regex.pattern))
    return parts or None


class Matcher:
    """One rule, matched by its combined regex (or by pathspec when it has negations)."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        #: The regex of each pattern (None: the rule has a negation; pathspec matches it).
        self.regexes = _pattern_regexes(rule)
        self.fast = (re.compile("|".join(f"(?:{p})" for p in self.regexes))
                     if self.regexes is not None else None)

    def match(self, path: str) -> bool:
        if self.fast is not None:
            return self.fast.match(path) is not None
        return bool(self.rule.spec.match_file(path))

    def pattern_for(self, path: str) -> str:
        """The pattern of the rule that matches ``path`` (for reports)."""
        result = self.rule.spec.check_file(path)
        if result.index is not None:
            return self.rule.patterns[result.index]
        for p in self.rule.patterns:
            if make_rule("x", "remove", [p], "").spec.match_file(path):
                return p
        return self.rule.patterns[0]


class ProtectionMatcher(Matcher):
    """A knowledge-base protection with the same fast matching as rules."""

    def __init__(self, protection: Protection) -> None:
        super().__init__(make_rule(protection.id, "keep", protection.patterns, protection.reason))
        self.protection = protection


class FirstMatch:
    """The first of several matchers, in order, that matches a path.

    Component shapes (see the module docstring) go into dicts from a component to the
    first matcher with such a pattern; what a path's directories say is worked out once per
    directory, and what its file name says once per name. Anchored patterns are indexed by
    their first component; the rest are asked in order, and only while they could still
    come before what the dicts found.
    """

    def __init__(self, matchers: Iterable[Matcher]) -> None:
        self.matchers = tuple(matchers)
        self._none = len(self.matchers)
        self._dir_names: dict[str, int] = {}
        self._names: dict[str, int] = {}
        self._exts: dict[str, int] = {}
        self._anchored: dict[str, list[tuple[int, re.Pattern[str]]]] = {}
        self._general: list[tuple[int, Callable[[str], bool]]] = []
        self._by_dir: dict[str, int] = {}  # what a directory's components say
        self._by_name: dict[str, int] = {}  # what a last component says (__init__.py recurs)
        self._anchored_by_dir: dict[str, list[tuple[int, re.Pattern[str]]]] = {}
        self._under: dict[str, list[tuple[int, re.Pattern[str]]]] = {}
        self._under_by_dir: dict[str, list[tuple[int, re.Pattern[str]]]] = {}
        # Matchers are taken in order, so _general is built sorted by index.
        for index, m in enumerate(self.matchers):
            if m.regexes is None:
                self._general.append((index, m.match))
                continue
            for regex in m.regexes:
                self._add(index, regex)
        self._components = bool(self._dir_names or self._names or self._exts)

    def _add(self, index: int, regex: str) -> None:
        for shape, table in ((_DIR_SHAPE, self._dir_names), (_ANY_SHAPE, self._names),
                             (_EXT_SHAPE, self._exts)):
            found = shape.fullmatch(regex)
            if found is not None:
                table.setdefault(_unescape(found.group(1)), index)
                return
        found = _ANCHORED_SHAPE.match(regex)
        if found is not None:
            self._anchored.setdefault(_unescape(found.group(1)), []).append((index, re.compile(regex)))
            return
        found = _UNDER_SHAPE.match(regex)
        if found is not None:
            self._under.setdefault(_unescape(found.group(1)), []).append((index, re.compile(regex)))
            return
        compiled = re.compile(regex)
        self._general.append((index, lambda path: compiled.match(path) is not None))

    def _component(self, name: str, best: int, last: bool) -> int:
        """``best`` lowered by what one path component matches (``last``: no ``name/``)."""
        if not last:
            found = self._dir_names.get(name)
            if found is not None and found < best:
                best = found
        found = self._names.get(name)
        if found is not None and found < best:
            best = found
        if self._exts:
            dot = name.find(".")
            while dot != -1:
                found = self._exts.get(name[dot:])
                if found is not None and found < best:
                    best = found
                dot = name.find(".", dot + 1)
        return best

    def _directory(self, directory: str) -> int:
        best = self._by_dir.get(directory)
        if best is None:
            best = self._none
            if directory:
                head, _, name = directory.rpartition("/")
                best = self._component(name, self._directory(head), last=False)
            self._by_dir[directory] = best
        return best

    def _anchored_under(self, parent: str, name: str) -> list[tuple[int, re.Pattern[str]]]:
        """The anchored patterns that may match a path: those of its first component,
        looked up once per directory (a top-level path's first component is its name)."""
        if not parent:
            return self._anchored.get(name, [])
        found = self._anchored_by_dir.get(parent)
        if found is None:
            found = self._anchored_by_dir[parent] = self._anchored.get(parent.partition("/")[0], [])
        return found

    def _under_dirs_of(self, parent: str) -> list[tuple[int, re.Pattern[str]]]:
        """The floating patterns under a literal directory that ``parent`` (a path's
        directory) has among its components, in matcher order; once per directory."""
        found = self._under_by_dir.get(parent)
        if found is None:
            found = sorted((entry for name in set(parent.split("/")) if name in self._under
                            for entry in self._under[name]), key=lambda e: e[0])
            self._under_by_dir[parent] = found
        return found

    def first(self, path: str) -> Optional[Matcher]:
        """The first matcher that matches ``path`` (a trailing ``/`` marks a directory)."""
        best = self._none
        parent, _, name = path.rpartition("/")
        if self._components:
            best = self._by_dir.get(parent, -1)
            if best < 0:
                best = self._directory(parent)
            own = self._by_name.get(name, -1)
            if own < 0:
                own = self._by_name[name] = self._component(name, self._none, last=True)
            if own < best:
                best = own
        if self._anchored:
            for index, regex in self._anchored_under(parent, name):
                if index >= best:
                    break
                if regex.match(path) is not None:
                    best = index
                    break
        if self._under and parent:
            for index, regex in self._under_dirs_of(parent):
                if index >= best:
                    break
                if regex.match(path) is not None:
                    best = index
                    break
        for index, match in self._general:
            if index >= best:
                break
            if match(path):
                best = index
                break
        return None if best == self._none else self.matchers[best]
