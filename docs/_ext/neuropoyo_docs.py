"""Sphinx extension of the neuropoyo site: reference pages generated from the code, and a check that
every page names only commands, flags, config keys and Python names that exist.

Generated (a page holds the marker line; the build puts the text in its place, so the page follows
the code):
    ``<!-- generated: config-keys -->``  every key of a run file and of a dataset file, from the
        config dataclasses: type, default and the description in the class's docstring or the
        field's comment (a key without a description is a build warning).
    ``<!-- generated: presets -->``      the shipped model presets and run files, as they read.

Checked on every page (a warning, so an error in the strict build): ``neuropoyo SUBCOMMAND --flag``
in code (inline, blocks, tutorial scripts), ``section.key`` config keys in inline code, and
``neuropoyo.name`` Python names. :func:`problems` is the check, used by the tests on README.md too.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.util
import inspect
import io
import re
import shlex
import textwrap
import tokenize
import typing
from pathlib import Path

from sphinx.util import logging

import neuropoyo
from neuropoyo.cli import build_parser
from neuropoyo.data.dataset import SourceOptions
from neuropoyo.evaluation.selection import EvaluationConfig
from neuropoyo.model.config import POYOConfig
from neuropoyo.pipeline.config import AugmentConfig, LossConfig
from neuropoyo.training.config import MODEL_PRESETS, RUN_PRESETS, TrainConfig

SECTIONS = {"model": POYOConfig, "loss": LossConfig, "augment": AugmentConfig,
            "evaluation": EvaluationConfig, "training": TrainConfig}
GALLERY = "auto_tutorials"  # sphinx-gallery's output folder (docs/conf.py)
MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)

# code spans: fenced blocks, inline code, and Python string literals of the tutorial scripts
FENCE = re.compile(r"^(`{3,}|~{3,}|::)[^\n]*\n(.*?)(?:^\1|\Z)", re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"(?<!`)(`{1,2})([^`\n]+?)\1(?!`)")
COMMAND = re.compile(r"(?:^|[\s\"'(`$])neuropoyo((?:[ \t]+[^\s\"'`|;&)]+)+)")
CONFIG_KEY = re.compile(rf"^({'|'.join(SECTIONS)})\.([a-z_]+)$")
FILE_SUFFIXES = {"safetensors", "json", "yaml", "yml", "h5", "csv", "png", "md", "pt", "nwb", "py", "onnx"}
PYTHON_NAME = re.compile(r"\bneuropoyo\.([A-Za-z_]\w*)")


# -- descriptions of config fields -------------------------------------------------------------


def docstring_entries(cls: type) -> dict[str, str]:
    """``name: text`` entries of a class docstring (continuation lines indented deeper)."""
    entries: dict[str, str] = {}
    name = None
    for line in inspect.cleandoc(cls.__doc__ or "").splitlines():
        match = re.match(r"^([a-z_]+): (.*)$", line)
        if match:
            name = match.group(1)
            entries[name] = match.group(2)
        elif name and line.startswith(" ") and line.strip():
            entries[name] += " " + line.strip()
        else:
            name = None
    return entries


def field_comments(cls: type) -> dict[str, str]:
    """The comment ending each field's line in the class body."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments = {tok.start[0]: tok.string.lstrip("# ") for tok in
                tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    body = ast.parse(source).body[0].body
    return {node.target.id: comments[node.lineno] for node in body
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.lineno in comments}


def describe_fields(cls: type) -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) of each field; description '' when the code gives none."""
    hints = typing.get_type_hints(cls)
    described = {**field_comments(cls), **docstring_entries(cls)}
    rows = []
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = "(required)"
        kind = str(hints[field.name]).replace("typing.", "").replace("<class '", "").replace("'>", "")
        rows.append((field.name, kind, _yaml(default), described.get(field.name, "")))
    return rows


def _yaml(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, typing.Mapping)):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    return str(value)


def _table(rows, prefix: str) -> str:
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for key, kind, default, text in rows:
        cells = [f"`{prefix}{key}`", f"`{kind}`", f"`{default}`", text.replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def config_keys_markdown() -> tuple[str, list[str]]:
    """The config-keys reference and the keys that lack a description."""
    parts, undescribed = [], []
    for section, cls in SECTIONS.items():
        rows = describe_fields(cls)
        undescribed += [f"{section}.{key}" for key, _, _, text in rows if not text]
        renamed = getattr(cls, "RENAMED", {})
        old = f"\n\nOld spellings still read, with a warning: {', '.join(f'`{a}` → `{b}`' for a, b in renamed.items())}." if renamed else ""
        parts.append(f"## `{section}:`\n\n{_first_line(cls)}{old}\n\n{_table(rows, section + '.')}")
    rows = describe_fields(SourceOptions)
    undescribed += [f"sources[].{key}" for key, _, _, text in rows if not text]
    parts.append(
        "## Dataset files: `sources:`\n\nEach entry of a dataset file's `sources:` list takes `recordings:` "
        "(a path, folder or glob, or a list of them, relative to the file's folder) and these options; "
        f"`null` means the run's own setting.\n\n{_table(rows, '')}"
    )
    return "\n\n".join(parts), undescribed


def _first_line(cls: type) -> str:
    doc = inspect.cleandoc(cls.__doc__ or "")
    return doc.split("\n\n")[0].replace("\n", " ") if doc else ""


def presets_markdown() -> str:
    parts = []
    for kind, folder in (("Run files", RUN_PRESETS), ("Model presets", MODEL_PRESETS)):
        parts.append(f"## {kind} (`{folder.parent.name}/{folder.name}/`)")
        for path in sorted(folder.glob("*.yaml")):
            name = f"{folder.name}/{path.stem}"
            parts.append(f"### `{name}`\n\n```yaml\n{path.read_text().rstrip()}\n```")
    return "\n\n".join(parts)


GENERATORS = {"config-keys": lambda: config_keys_markdown()[0], "presets": presets_markdown}


# -- the check ---------------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> tuple[set[str], set[str]]:
    """(documented option strings, hidden ones: old spellings kept for a release)."""
    shown, hidden = set(), set()
    for action in parser._actions:
        (hidden if action.help == argparse.SUPPRESS else shown).update(action.option_strings)
    return shown, hidden


def code_spans(text: str, python: bool = False) -> list[str]:
    """The code in a page: fenced and literal blocks, inline code; in a script, its strings too."""
    if python:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
        comments = "\n".join(tok.string for tok in tokens if tok.type == tokenize.COMMENT)
        return [tok.string for tok in tokens if tok.type == tokenize.STRING] + [
            m.group(2) for m in INLINE.finditer(comments)]
    spans = [m.group(2) for m in FENCE.finditer(text)]
    rest = FENCE.sub("", text)
    return spans + [m.group(2) for m in INLINE.finditer(rest)]


def check_command(words: list[str], parser: argparse.ArgumentParser) -> str | None:
    """None when ``neuropoyo WORDS...`` names an existing subcommand and existing flags."""
    path = ["neuropoyo"]
    for word in words:
        commands = _subcommands(parser)
        if not commands or word.startswith("-"):
            break
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            return None  # not a command line (a log line, a placeholder)
        if word not in commands:
            return f"`{' '.join(path + [word])}`: no such command (see `{' '.join(path)} --help`)"
        parser = commands[word]
        path.append(word)
    shown, hidden = _flags(parser)
    for word in words:
        flag = word.split("=")[0].strip("[]().,;:")
        if not re.fullmatch(r"--[a-z][a-z0-9-]*", flag) or flag in shown:
            continue
        why = "an old spelling kept for one release; use the new name" if flag in hidden else "no such flag"
        return f"`{' '.join(path)} {flag}`: {why} (see `{' '.join(path)} --help`)"
    return None


def problems(text: str, python: bool = False) -> list[str]:
    """Commands, flags, config keys and ``neuropoyo.`` names in the code of ``text`` that the code
    base does not have, one message each."""
    parser, found = build_parser(), []
    for span in code_spans(text, python):
        joined = span.replace("\\\n", " ")
        for match in COMMAND.finditer(joined):
            try:
                words = shlex.split(match.group(1), comments=True)
            except ValueError:  # an unclosed quote or a lone backslash: plain words will do
                words = match.group(1).split()
            message = check_command(words, parser)
            if message:
                found.append(message)
        key = CONFIG_KEY.match(span.strip())
        if key and key.group(2) not in FILE_SUFFIXES and key.group(2) not in {f.name for f in dataclasses.fields(SECTIONS[key.group(1)])}:
            found.append(f"`{span.strip()}`: no such config key (see the config reference)")
        for name in PYTHON_NAME.findall(joined):
            if not (name in FILE_SUFFIXES or name.isupper() or hasattr(neuropoyo, name) or
                    importlib.util.find_spec(f"neuropoyo.{name}")):
                found.append(f"`neuropoyo.{name}`: no such name in the package")
    return sorted(set(found))


# -- docstrings --------------------------------------------------------------------------------

ENTRY = re.compile(r"^([a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*): (\S.*)$")


def docstring_fields(app, what, name, obj, options, lines: list[str]) -> None:
    """The code's ``name: text`` entries as a field list (``:param name:`` for the parameters), so
    they render as a list; an entry runs to the next entry or blank line."""
    try:
        params = set(inspect.signature(obj).parameters) if callable(obj) else set()
    except (TypeError, ValueError):
        params = set()
    out: list[str] = []
    in_entry = False
    for line in lines:
        match = ENTRY.match(line)
        if match:
            if out and out[-1].strip() and not in_entry:
                out.append("")
            names = match.group(1)
            field = f"param {names}" if names in params else names
            out.append(f":{field}: {match.group(2)}")
            in_entry = True
        elif in_entry and line.strip():
            out.append("    " + line.strip())
        else:
            in_entry = False
            out.append(line)
    lines[:] = out


# -- Sphinx events -----------------------------------------------------------------------------


def _source_read(app, docname: str, source: list[str]) -> None:
    log = logging.getLogger("neuropoyo_docs")
    text = source[0]
    if docname.startswith(GALLERY + "/"):
        return  # generated from a tutorial script, checked as a script by _check_tutorials
    for message in problems(text):
        log.warning(message, location=docname, type="neuropoyo", subtype="names")

    def generate(match: re.Match) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            log.warning(f"unknown generated section {name!r}", location=docname)
            return match.group(0)
        return GENERATORS[name]()

    source[0] = MARKER.sub(generate, text)
    if "<!-- generated: config-keys -->" in text:
        for key in config_keys_markdown()[1]:
            log.warning(f"config key {key} has no description in the code", location=docname)


def _check_tutorials(app) -> None:
    log = logging.getLogger("neuropoyo_docs")
    for script in sorted((Path(app.srcdir) / "tutorials").glob("*.py")):
        for message in problems(script.read_text(), python=True):
            log.warning(message, location=str(script), type="neuropoyo", subtype="names")


def setup(app):
    app.connect("builder-inited", _check_tutorials)
    app.connect("source-read", _source_read)
    app.connect("autodoc-process-docstring", docstring_fields)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
