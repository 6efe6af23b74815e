"""Dockerfile syntax: lines into instructions, and Docker's word processing.

:func:`parse` turns the text into :class:`Instruction` objects, following
Docker's documented syntax:

* **parser directives** — ``# escape=``` and ``# syntax=...`` (ignored) lines
  at the very top, before any comment, blank line or instruction; a directive
  given twice or an escape other than ``\\`` or ````` is an error;
* **comments** — a line whose first non-blank character is ``#``; a ``#``
  anywhere else is an argument;
* **continuations** — the escape character at the end of a line (trailing
  blanks allowed) joins the next line, whose leading blanks are kept; comment
  and empty lines inside a continued instruction are dropped;
* **keywords** are case-insensitive; ``--flag=value`` words right after the
  keyword are the instruction's flags;
* **exec (JSON) form** — arguments that parse as a JSON array of strings; any
  other text is shell form (``RUN``, ``CMD``, ``ENTRYPOINT``, ``COPY``,
  ``ADD``).

Structural errors (unknown instruction, wrong argument count, unknown flag, an
instruction before the first ``FROM``) are raised here with the line number;
everything that needs variable values is checked when building.

Word processing (:class:`Words`) is Docker's shell-like expansion for the
instructions Docker substitutes in (``FROM``, ``WORKDIR``, ``COPY``, ``ADD``,
``ENV``, ``ARG``, ``LABEL``, ``EXPOSE``, ``USER``, ``STOPSIGNAL``): single
quotes are literal, double quotes allow ``$`` expansion and escape only ``"``,
``$`` and the escape character, the escape character outside quotes takes the
next character literally, and ``$NAME``, ``${NAME}``, ``${NAME:-word}``,
``${NAME-word}``, ``${NAME:+word}``, ``${NAME+word}``, ``${NAME:?message}``
and ``${NAME?message}`` expand (an unset name is empty). When a line is split
into several words, an unquoted expansion is split on whitespace too, as
Docker does.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

SUPPORTED = ("FROM", "WORKDIR", "COPY", "ADD", "RUN", "ENV", "ARG", "EXPOSE", "CMD", "ENTRYPOINT", "LABEL", "USER",
             "SHELL", "STOPSIGNAL", "MAINTAINER")
UNSUPPORTED = ("VOLUME", "HEALTHCHECK", "ONBUILD")
_FLAGS: dict[str, tuple[str, ...]] = {
    "FROM": ("platform",),
    "COPY": ("from", "chown", "chmod", "link"),
    "ADD": ("chown", "chmod", "link"),
    "RUN": (),
}
_RUN_UNSUPPORTED_FLAGS = ("mount", "network", "security")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9._-]*")
_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class DockerfileError(Exception):
    """An error in a Dockerfile: ``path:line: message``."""

    def __init__(self, message: str, path: str = "Dockerfile", line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Instruction:
    """One instruction. ``args`` is the text after the flags (continuations joined); ``exec_form`` the JSON
    array when the arguments are one; ``pairs`` the ``(key, raw value)`` pairs of ENV, LABEL and ARG (ARG's
    value is ``None`` without a default)."""

    keyword: str
    line: int
    end_line: int
    text: str
    args: str
    flags: tuple[tuple[str, str], ...] = ()
    exec_form: tuple[str, ...] | None = None
    pairs: tuple[tuple[str, str | None], ...] = ()

    def flag(self, name: str) -> str | None:
        for k, v in self.flags:
            if k == name:
                return v
        return None

    @property
    def is_exec(self) -> bool:
        return self.exec_form is not None


@dataclass(frozen=True)
class Dockerfile:
    path: str
    escape: str
    instructions: tuple[Instruction, ...]
    directives: dict[str, str] = field(default_factory=dict)


def _strip_continuation(line: str, escape: str) -> tuple[str, bool]:
    """(line without a trailing escape, whether it continues)."""
    stripped = line.rstrip(" \t")
    if stripped.endswith(escape):
        return stripped[:-1], True
    return line, False


def _is_comment(line: str) -> bool:
    return line.lstrip(" \t").startswith("#")


def parse(text: str, path: str = "Dockerfile") -> Dockerfile:
    """Parse a Dockerfile; raises :class:`DockerfileError` naming ``path`` and the line."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines()
    escape = "\\"
    directives: dict[str, str] = {}
    i = 0
    # Parser directives: only at the very top.
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i].strip(" \t"))
        if not m:
            break
        name, value = m.group(1).lower(), m.group(2)
        if name not in ("escape", "syntax", "check"):
            break
        if name in directives:
            raise DockerfileError(f"only one {name} parser directive can be used", path, i + 1)
        if name == "escape" and value not in ("\\", "`"):
            raise DockerfileError(f"invalid escape token '{value}' does not match ` or \\", path, i + 1)
        directives[name] = value
        i += 1
    escape = directives.get("escape", escape)

    out: list[Instruction] = []
    while i < len(lines):
        raw = lines[i]
        start = i + 1
        i += 1
        if not raw.strip() or _is_comment(raw):
            continue
        line, cont = _strip_continuation(raw.lstrip(" \t"), escape)
        while cont and i < len(lines):
            nxt = lines[i]
            i += 1
            if _is_comment(nxt) or not nxt.strip():
                continue
            more, cont = _strip_continuation(nxt, escape)
            line += more
        out.append(_instruction(line.strip(), start, i, escape, path))
    if not out:
        raise DockerfileError("the Dockerfile has no instructions", path)
    for ins in out:
        if ins.keyword == "FROM":
            break
        if ins.keyword != "ARG":
            raise DockerfileError(f"{ins.keyword}: no build stage in current context (the first instruction must be "
                                  "FROM, only ARG may come before it)", path, ins.line)
    return Dockerfile(path, escape, tuple(out), directives)


def _instruction(line: str, start: int, end: int, escape: str, path: str) -> Instruction:
    m = re.match(r"(\S+)\s*(.*)$", line, re.S)
    assert m is not None
    keyword, rest = m.group(1).upper(), m.group(2).strip()

    def err(msg: str) -> DockerfileError:
        return DockerfileError(msg, path, start)

    if keyword in UNSUPPORTED:
        raise err(f"{keyword} is not supported by tinykube image build (supported: {', '.join(SUPPORTED)})")
    if keyword not in SUPPORTED:
        close = difflib.get_close_matches(keyword, SUPPORTED + UNSUPPORTED, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise err(f"unknown instruction: {m.group(1)}{hint}")
    flags, rest = _leading_flags(rest)
    allowed = _FLAGS.get(keyword, ())
    for k, _v in flags:
        if keyword == "RUN" and k in _RUN_UNSUPPORTED_FLAGS:
            raise err(f"RUN --{k} is not supported by tinykube image build")
        if k not in allowed:
            raise err(f"unknown flag: --{k}")
    exec_form: tuple[str, ...] | None = None
    if keyword in ("RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD") and rest.startswith("["):
        try:
            parsed = json.loads(rest)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            exec_form = tuple(parsed)
    pairs: tuple[tuple[str, str | None], ...] = ()
    if keyword == "FROM":
        words = rest.split()
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise err("FROM requires either one or three arguments (FROM <image> [AS <name>])")
        if len(words) == 3 and not _STAGE_NAME.fullmatch(words[2].lower()):
            raise err(f"invalid name for build stage: {words[2]!r}, name can't start with a number or "
                      "contain symbols")
    elif keyword in ("RUN", "CMD", "ENTRYPOINT"):
        if exec_form is None and not rest and keyword == "RUN":
            raise err("RUN requires at least one argument")
        if exec_form is None and not rest:
            raise err(f"{keyword} requires at least one argument")
    elif keyword == "SHELL":
        if exec_form is None:
            raise err("SHELL requires the arguments to be in JSON form")
        if not exec_form:
            raise err("SHELL requires at least one argument")
    elif keyword in ("COPY", "ADD"):
        n = len(exec_form) if exec_form is not None else len(split_raw(rest, escape))
        if n < 2:
            raise err(f"{keyword} requires at least two arguments, but got {n}")
    elif keyword in ("ENV", "LABEL"):
        pairs = _name_values(keyword, rest, escape, err)
    elif keyword == "ARG":
        arg_pairs: list[tuple[str, str | None]] = []
        for word in split_raw(rest, escape):
            name, eq, value = word.partition("=")
            if not _NAME.fullmatch(name):
                raise err(f"ARG names can only contain letters, digits and underscores: {name!r}")
            arg_pairs.append((name, value if eq else None))
        if not arg_pairs:
            raise err("ARG requires at least one argument")
        pairs = tuple(arg_pairs)
    elif keyword in ("WORKDIR", "USER", "STOPSIGNAL", "EXPOSE", "MAINTAINER"):
        if not rest:
            raise err(f"{keyword} requires {'at least' if keyword == 'EXPOSE' else 'exactly'} one argument")
        if keyword in ("USER", "STOPSIGNAL") and len(split_raw(rest, escape)) != 1:
            raise err(f"{keyword} requires exactly one argument")
    return Instruction(keyword, start, end, line, rest, tuple(flags), exec_form, pairs)


def _leading_flags(rest: str) -> tuple[list[tuple[str, str]], str]:
    flags: list[tuple[str, str]] = []
    while rest.startswith("--"):
        m = re.match(r"--([A-Za-z][A-Za-z0-9-]*)(?:=(\"[^\"]*\"|'[^']*'|\S*))?(?:\s+|$)", rest)
        if not m:
            break
        value = m.group(2) or ""
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        flags.append((m.group(1).lower(), value))
        rest = rest[m.end():]
    return flags, rest


def _name_values(keyword: str, rest: str, escape: str,
                 err: Callable[[str], DockerfileError]) -> tuple[tuple[str, str | None], ...]:
    words = split_raw(rest, escape)
    if not words:
        raise err(f"{keyword} requires at least one argument")
    if "=" not in words[0]:
        # Legacy form: NAME VALUE..., the value being the rest of the line.
        parts = re.split(r"\s+", rest, maxsplit=1)
        if len(parts) < 2 or not parts[1].strip():
            raise err(f"{keyword} must have two arguments")
        return ((parts[0], parts[1].strip()),)
    out: list[tuple[str, str | None]] = []
    for w in words:
        name, eq, value = w.partition("=")
        if not eq:
            raise err(f"Syntax error - can't find = in {w!r}. Must be of the form: name=value")
        if not name:
            raise err(f"{keyword} names can not be blank")
        out.append((name, value))
    return tuple(out)


def split_raw(text: str, escape: str = "\\") -> list[str]:
    """Split on whitespace outside quotes, keeping quotes and escapes as written (the first pass of ENV/LABEL/ARG
    and argument counting)."""
    words: list[str] = []
    cur: list[str] = []
    quote = ""
    in_word = False
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            cur.append(c)
            if c == escape and quote == '"' and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
            elif c == quote:
                quote = ""
        elif c.isspace():
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
        else:
            in_word = True
            cur.append(c)
            if c == escape and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
            elif c in "\"'":
                quote = c
        i += 1
    if in_word:
        words.append("".join(cur))
    return words


class SubstitutionError(ValueError):
    pass


class Words:
    """Docker's word processing with ``env`` (a name → value mapping) and the file's escape character."""

    def __init__(self, env: dict[str, str], escape: str = "\\") -> None:
        self.env = env
        self.escape = escape

    def word(self, text: str) -> str:
        """One word: quotes removed, variables expanded, whitespace kept."""
        words = self._process(text, split=False)
        return words[0] if words else ""

    def words(self, text: str) -> list[str]:
        """Several words split on unquoted whitespace (including whitespace from unquoted expansions)."""
        return self._process(text, split=True)

    def expand(self, text: str) -> str:
        """Variables only (exec-form arguments): no quote or escape processing except ``\\$``."""
        out: list[str] = []
        i = 0
        while i < len(text):
            c = text[i]
            if c == self.escape and i + 1 < len(text) and text[i + 1] == "$":
                out.append("$")
                i += 2
            elif c == "$":
                val, i = self._dollar(text, i)
                out.append(val)
            else:
                out.append(c)
                i += 1
        return "".join(out)

    def _process(self, text: str, split: bool) -> list[str]:
        words: list[str] = []
        cur: list[str] = []
        started = False
        esc = self.escape

        def end_word() -> None:
            nonlocal cur, started
            if started:
                words.append("".join(cur))
            cur, started = [], False

        i = 0
        n = len(text)
        while i < n:
            c = text[i]
            if c == "'":
                j = text.find("'", i + 1)
                if j < 0:
                    raise SubstitutionError("unexpected end of statement while looking for matching single-quote")
                cur.append(text[i + 1:j])
                started = True
                i = j + 1
            elif c == '"':
                started = True
                i += 1
                while True:
                    if i >= n:
                        raise SubstitutionError("unexpected end of statement while looking for matching double-quote")
                    d = text[i]
                    if d == '"':
                        i += 1
                        break
                    if d == esc and i + 1 < n and text[i + 1] in ('"', "$", esc):
                        cur.append(text[i + 1])
                        i += 2
                    elif d == "$":
                        val, i = self._dollar(text, i)
                        cur.append(val)
                    else:
                        cur.append(d)
                        i += 1
            elif c == esc:
                if i + 1 < n:
                    cur.append(text[i + 1])
                    started = True
                i += 2
            elif c == "$":
                val, i = self._dollar(text, i)
                if split:
                    for k, part in enumerate(re.split(r"(\s+)", val)):
                        if k % 2:
                            end_word()
                        elif part:
                            cur.append(part)
                            started = True
                else:
                    cur.append(val)
                    started = started or bool(val)
            elif split and c.isspace():
                end_word()
                i += 1
            else:
                cur.append(c)
                started = True
                i += 1
        end_word()
        return words

    def _dollar(self, text: str, i: int) -> tuple[str, int]:
        """Expand the ``$`` at ``text[i]``; returns (value, index after it)."""
        n = len(text)
        if i + 1 >= n:
            return "$", i + 1
        c = text[i + 1]
        if c != "{":
            if c.isdigit():  # a positional parameter: never set in a Dockerfile
                m = re.compile(r"[0-9]+").match(text, i + 1)
                assert m is not None
                return "", m.end()
            m = _NAME.match(text, i + 1)
            if not m:
                return "$", i + 1
            return self.env.get(m.group(0), ""), m.end()
        m = _NAME.match(text, i + 2)
        if not m:
            raise SubstitutionError(f"bad substitution: {text[i:]!r}")
        name, j = m.group(0), m.end()
        if j >= n:
            raise SubstitutionError(f"missing '}}' in {text[i:]!r}")
        if text[j] == "}":
            return self.env.get(name, ""), j + 1
        op = text[j]
        colon = False
        if op == ":":
            colon = True
            j += 1
            op = text[j] if j < n else ""
        if op not in ("-", "+", "?"):
            raise SubstitutionError(f"unsupported modifier ({op or 'end'}) in substitution: {text[i:]!r}")
        # The word runs to the matching brace.
        depth, k = 1, j + 1
        while k < n:
            if text[k] == self.escape:
                k += 2
                continue
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        if k >= n:
            raise SubstitutionError(f"missing '}}' in {text[i:]!r}")
        word = self.word(text[j + 1:k]) if text[j + 1:k] else ""
        value = self.env.get(name)
        is_set = value is not None and (not colon or value != "")
        if op == "-":
            return (value if is_set and value is not None else word), k + 1
        if op == "+":
            return (word if is_set else ""), k + 1
        if not is_set:
            raise SubstitutionError(f"{name}: {word or 'is not allowed to be unset'}")
        return value or "", k + 1
