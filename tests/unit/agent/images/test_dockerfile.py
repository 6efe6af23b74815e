"""Dockerfile syntax: directives, comments, continuations, forms, flags, word processing, errors."""

from __future__ import annotations

import pytest

from tinykube.agent.images.dockerfile import DockerfileError, SubstitutionError, Words, parse, split_raw


def kinds(text: str) -> list[tuple[str, str, int]]:
    return [(i.keyword, i.args, i.line) for i in parse(text).instructions]


def test_comments_blank_lines_and_case_insensitive_keywords() -> None:
    text = "# a comment\n\nfrom busybox\n  # indented comment\nrun echo hi # not a comment\n"
    assert kinds(text) == [("FROM", "busybox", 3), ("RUN", "echo hi # not a comment", 5)]


def test_continuations_keep_leading_blanks_and_skip_comments_and_empty_lines() -> None:
    text = "FROM busybox\nRUN echo a \\\n    && echo b \\  \n# dropped\n\n    && echo c\nCMD x\n"
    ins = parse(text).instructions
    assert ins[1].args == "echo a     && echo b     && echo c"
    assert (ins[1].line, ins[1].end_line) == (2, 6)
    assert (ins[2].keyword, ins[2].line) == ("CMD", 7)


def test_escape_directive_switches_the_continuation_character() -> None:
    text = "# escape=`\nFROM busybox\nCOPY a\\b \\\\c\\ \nRUN echo `\n  x\n"
    df = parse(text)
    assert df.escape == "`" and df.directives == {"escape": "`"}
    assert df.instructions[1].args == "a\\b \\\\c\\"  # backslashes are plain characters now
    assert df.instructions[2].args == "echo   x"


def test_directives_only_at_the_top() -> None:
    df = parse("# comment\n# escape=`\nFROM busybox\nRUN a \\\n b\n")
    assert df.escape == "\\" and df.instructions[1].args == "a  b"
    df = parse("# syntax=docker/dockerfile:1\n# escape=\\\nFROM busybox\n")
    assert df.directives == {"syntax": "docker/dockerfile:1", "escape": "\\"}


@pytest.mark.parametrize("text,line,message", [
    ("# escape=x\nFROM a\n", 1, "invalid escape token 'x'"),
    ("# escape=`\n# escape=`\nFROM a\n", 2, "only one escape parser directive"),
    ("FROM busybox\nFORM x\n", 2, "unknown instruction: FORM (did you mean FROM?)"),
    ("FROM busybox\n\nVOLUME /data\n", 3, "VOLUME is not supported"),
    ("RUN echo\nFROM busybox\n", 1, "no build stage in current context"),
    ("FROM busybox\nRUN\n", 2, "RUN requires at least one argument"),
    ("FROM busybox\nCOPY onlyone\n", 2, "COPY requires at least two arguments"),
    ("FROM busybox\nENV ONLY\n", 2, "ENV must have two arguments"),
    ("FROM busybox\nENV a=1 b\n", 2, "can't find = in 'b'"),
    ("FROM busybox\nSHELL /bin/bash -c\n", 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM busybox\nCOPY --bogus=1 a b\n", 2, "unknown flag: --bogus"),
    ("FROM busybox\nRUN --mount=type=cache,target=/x true\n", 2, "RUN --mount is not supported"),
    ("FROM a b\n", 1, "FROM requires either one or three arguments"),
    ("FROM a AS 1x\n", 1, "invalid name for build stage"),
    ("FROM busybox\nUSER a b\n", 2, "USER requires exactly one argument"),
    ("FROM busybox\nARG 1x=2\n", 2, "ARG names can only contain"),
    ("# only a comment\n\n", 0, "no instructions"),
])
def test_errors_name_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(DockerfileError) as e:
        parse(text, "app/Dockerfile")
    assert e.value.line == line and message in e.value.message
    assert str(e.value).startswith(f"app/Dockerfile:{line}: " if line else "app/Dockerfile: ")


def test_exec_and_shell_forms() -> None:
    ins = parse('FROM x\nCMD ["python", "app.py"]\nRUN ["a", \'b\']\nENTRYPOINT echo "hi"\nCOPY ["a b", "/c/"]\n'
                ).instructions
    assert ins[1].exec_form == ("python", "app.py")
    assert ins[2].exec_form is None and ins[2].args == "[\"a\", 'b']"  # not valid JSON: shell form, like Docker
    assert ins[3].exec_form is None and ins[3].args == 'echo "hi"'
    assert ins[4].exec_form == ("a b", "/c/")


def test_flags_and_pairs() -> None:
    ins = parse('FROM --platform=linux/amd64 python:3.6 AS build\nCOPY --from=build --chown=1:2 a b\n'
                'ENV A=1 B="two words" C=x\\ y\nENV NAME World wide\nLABEL "k.x"="v 1" k2=v2\nARG X Y=2\n'
                ).instructions
    assert ins[0].flags == (("platform", "linux/amd64"),) and ins[0].args == "python:3.6 AS build"
    assert ins[1].flag("from") == "build" and ins[1].flag("chown") == "1:2" and ins[1].args == "a b"
    assert ins[2].pairs == (("A", "1"), ("B", '"two words"'), ("C", "x\\ y"))
    assert ins[3].pairs == (("NAME", "World wide"),)
    assert ins[4].pairs == (('"k.x"', '"v 1"'), ("k2", "v2"))
    assert ins[5].pairs == (("X", None), ("Y", "2"))


def test_split_raw_keeps_quotes() -> None:
    assert split_raw('a "b c" d\\ e \'f g\'') == ['a', '"b c"', 'd\\ e', "'f g'"]


def test_word_processing() -> None:
    w = Words({"A": "x", "EMPTY": "", "SP": "1 2"})
    assert w.word("$A ${A} pre${A}post") == "x x prexpost"
    assert w.word("'$A' \"$A\" \\$A") == "$A x $A"
    assert w.word('"a \\" \\$A \\n"') == 'a " $A \\n'
    assert w.word("${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${A:+set} ${UNSET:+set}|") == "d d  set |"
    assert w.word("${UNSET:-${A}y}") == "xy"
    assert w.word("$ $1x a$") == "$ x a$"  # $1 is a positional parameter: empty
    assert w.words("$SP '$SP' \"$SP\" a\\ b") == ["1", "2", "$SP", "1 2", "a b"]
    assert w.expand("$A \\$A ${A}") == "x $A x"
    assert Words({"A": "x"}, "`").word("`$A a\\b") == "$A a\\b"
    with pytest.raises(SubstitutionError, match="UNSET: must be set"):
        w.word("${UNSET:?must be set}")
    with pytest.raises(SubstitutionError, match="unsupported modifier"):
        w.word("${A/x/y}")
    with pytest.raises(SubstitutionError, match="matching double-quote"):
        w.word('"abc')
