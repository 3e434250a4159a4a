"""The README is the front door: its commands, study keys and nox sessions must be the ones the code has."""

from __future__ import annotations

import ast
import dataclasses
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from benchmark.cli import build_parser
from benchmark.studies import _TABLES, load_study, parse_study

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# stand-ins for the README's placeholders, so that a command line parses as a user would type it
PLACEHOLDERS = {"<run id>": "0123abcd", "<gpu>": "h100", "STUDY": "studies/paper_table_embedded.toml"}
PLACEHOLDERS["OTHER"] = PLACEHOLDERS["STUDY"]
MINIMAL = {"name": "readme", "encoders": {"audio": ["tiny-wavlm"]}}


def fenced(lang: str) -> list[str]:
    """The README's fenced blocks of one language, indented ones (in lists) included, dedented."""
    blocks = []
    for indent, body in re.findall(rf"^( *)```{lang}\n(.*?)^\1```", README, re.S | re.M):
        blocks.append("\n".join(line[len(indent) :] for line in body.splitlines()))
    return blocks


def commands(program: str) -> list[list[str]]:
    """Each line of the README's bash blocks that runs ``program`` (continuations joined, comments and
    ``&&`` chains split), as argv after the program name."""
    out = []
    for block in fenced("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                for name, value in PLACEHOLDERS.items():
                    part = part.replace(name, value)
                words = shlex.split(part, comments=True)
                if words[:1] == [program]:
                    out.append(words[1:])
    return out


def nox_sessions() -> set[str]:
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                target = dec.func if isinstance(dec, ast.Call) else dec
                if ast.unparse(target) == "nox.session":
                    names.add(node.name)
    return names


def table_keys(table: str) -> set[str]:
    return {f.name for f in dataclasses.fields(_TABLES[table])}


def test_the_readme_shows_gemo_bench_commands():
    # the checks below read these; a README reshaped so that none are found would pass them vacuously
    assert len(commands("gemo-bench")) >= 40
    assert len(fenced("toml")) >= 3


@pytest.mark.parametrize("argv", commands("gemo-bench"), ids=" ".join)
def test_every_gemo_bench_command_in_the_readme_parses(argv, capsys):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"README: `gemo-bench {shlex.join(argv)}` does not parse: {capsys.readouterr().err.strip()}")
    study = getattr(args, "study", None)
    if study and study.startswith("studies/") and not Path(study).name.startswith("my_"):
        # shipped study files must exist and take the overrides shown beside them
        assert (ROOT / study).is_file(), f"README names {study}, which is not shipped"
        load_study(ROOT / study, getattr(args, "overrides", None) or ())


def test_every_nox_session_the_readme_names_exists_and_every_session_is_named():
    sessions = nox_sessions()
    assert {"reproduce_table", "tests"} <= sessions
    shown = {argv[1] for argv in commands("nox") if argv[:1] == ["-s"]}
    assert shown, "no `nox -s` command found in the README"
    assert shown <= sessions, f"README runs sessions noxfile.py lacks: {sorted(shown - sessions)}"
    listed = README.split("`nox -l` lists every session", 1)[1].split("\n\n", 1)[0]
    named = set(re.findall(r"`(\w+)`", listed))
    missing = sessions - named - {"reproduce_table", "tests"}
    assert not missing, f"sessions the README's `nox -l` paragraph leaves out: {sorted(missing)}"


def _comment_keys(comment: str) -> set[str]:
    """``key = value`` pairs written in a comment (``seed = 0 seeds trial n``), not in its asides
    (``(alpha = 1)``)."""
    return set(re.findall(r"\b([a-z_]+) = ", re.sub(r"\(.*?\)", "", comment)))


def test_the_readmes_study_examples_are_valid_studies():
    for block in fenced("toml"):
        raw = tomllib.loads(block)
        study = {**MINIMAL, **raw} if "name" not in raw else raw
        parse_study(study)  # raises StudyError naming the key
        table = None
        for line in block.splitlines():
            head = re.match(r"\s*\[(\w+)\]", line)
            if head:
                table = head.group(1)
            if "#" in line and table in _TABLES:
                bad = _comment_keys(line.split("#", 1)[1]) - table_keys(table)
                assert not bad, f"README names {table}.{sorted(bad)[0]} in a comment; no such key"


def test_the_readmes_key_lists_name_real_keys_and_all_of_train():
    block = fenced("toml")[0]
    listed: dict[str, set[str]] = {}
    table = None
    for line in block.splitlines():
        head = re.match(r"\[(\w+)\]", line)
        if head:
            table = head.group(1)
        elif not line.startswith(" "):
            continue  # a key = value line; only the comment lists beside and under a header are read
        if table in ("model", "train") and "#" in line:
            words = line.split("#", 1)[1].replace("...", "").split(",")
            listed.setdefault(table, set()).update(w.strip() for w in words if w.strip())
    for table, keys in listed.items():
        assert keys <= table_keys(table), (
            f"README lists {table} keys that do not exist: {sorted(keys - table_keys(table))}"
        )
    assert listed["train"] == table_keys("train"), (
        f"README's [train] list leaves out: {sorted(table_keys('train') - listed['train'])}"
    )
