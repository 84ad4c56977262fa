"""MkDocs hooks (``mkdocs.yml``: ``hooks:``): the pages that are generated rather than written.

Markers in a page's Markdown are replaced before it is rendered:

- ``<!-- config-groups -->``: every option of every config group in ``conf/``, with the first comment of
  its file;
- ``<!-- config-schema: NAME [PREFIX] -->``: the keys of the typed schema ``sftgan_lit.config.NAME`` (or
  ``sftgan_lit.MODULE.CLASS`` for ``NAME = MODULE.CLASS``: type, default, the comment beside the field in the
  source), each written ``PREFIX<key>``;
- ``<!-- bench: NAME -->``: the tables of ``docs/benchmarks/NAME.json``, which ``benchmarks/bench_NAME.py``
  writes, with the machine it ran on;
- ``<!-- include: PATH -->``: a file of the repository (CHANGELOG.md).

A marker that names nothing (a schema that no longer exists, a benchmark file that is missing) fails the
build, so ``make docs`` (strict) catches a stale reference.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import io
import json
import re
import tokenize
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!--\s*(config-groups|config-schema|bench|include)(?::\s*([\w./-]+)(?:\s+([\w./-]+))?)?\s*-->")


class DocsError(RuntimeError):
    """A marker that names nothing."""


def _field_comments(cls) -> dict[str, str]:
    """``name -> comment`` for the fields of dataclass ``cls`` written ``name: type = value  # comment``."""
    comments: dict[str, str] = {}
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return comments
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            line = lines[tok.start[0] - 1]
            m = re.match(r"\s+(\w+)\s*:", line)
            if m:
                comments[m.group(1)] = tok.string.lstrip("# ").strip()
    return comments


def _type_name(tp) -> str:
    if isinstance(tp, str):
        return tp
    if inspect.isclass(tp) and issubclass(tp, enum.Enum):
        return " \\| ".join(str(m.value) for m in tp)
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " \\| ".join(_type_name(a) for a in args) + " or null"
    if tp is typing.Any:
        return "any"
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _value(value) -> str:
    if dataclasses.is_dataclass(value):
        return "(section below)"
    if isinstance(value, enum.Enum):
        value = value.value
    return "null" if value is None else f"`{json.dumps(value) if not isinstance(value, str) else value}`"


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return _value(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return _value(f.default_factory())
    return "required"


def schema_table(name: str, prefix: str = "", defaults=None) -> str:
    """A Markdown table of the keys of ``sftgan_lit.config.<name>``, or ``sftgan_lit.<module>.<class>`` for a
    dotted name (and of its nested schemas after it); ``defaults``: the instance whose values are the defaults
    (a nested section whose default differs from its class's, e.g. a second stage)."""
    import importlib

    module_name, _, class_name = name.rpartition(".")
    module = importlib.import_module(f"sftgan_lit.{module_name or 'config'}")
    cls = getattr(module, class_name, None)
    if cls is None or not dataclasses.is_dataclass(cls):
        raise DocsError(f"<!-- config-schema: {name} -->: {module.__name__} has no schema {class_name}")
    hints = typing.get_type_hints(cls)
    comments = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            comments.update(_field_comments(klass))
    rows, nested = [], []
    for f in dataclasses.fields(cls):
        if f.name.startswith("_"):
            continue
        tp = hints.get(f.name, f.type)
        key = f"{prefix}{f.name}"
        default = _value(getattr(defaults, f.name)) if defaults is not None else _default(f)
        if dataclasses.is_dataclass(tp):
            section = getattr(defaults, f.name) if defaults is not None else None
            if section is None and f.default_factory is not dataclasses.MISSING:
                section = f.default_factory()
            nested.append((f"{module_name}.{tp.__name__}" if module_name else tp.__name__, key + ".", section))
        rows.append(f"| `{key}` | {_type_name(tp)} | {default} | {comments.get(f.name, '')} |")
    doc = inspect.getdoc(cls) or ""
    out = [
        doc.split("\n\n")[0].replace("\n", " "),
        "",
        "| key | type | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    out += rows
    for sub, sub_prefix, section in nested:
        out += ["", f"`{sub_prefix.rstrip('.')}`:", "", schema_table(sub, sub_prefix, section)]
    return "\n".join(out)


def _first_sentence(lines: list[str]) -> str:
    """The first sentence of a config file's leading comment (its ``@package`` header left out)."""
    words = []
    for line in lines:
        if not line.startswith("#"):
            break
        if "@package" not in line:
            words.append(line.lstrip("# ").strip())
    text = " ".join(words)
    end = re.search(r"[.:](\s|$)", text)
    return (text[: end.start() + 1] if end else text).replace("|", "\\|")


def config_groups() -> str:
    """Each group of ``conf/`` with its options and the first comment line of each option's file."""
    out = ["| group | option | what it is |", "| --- | --- | --- |"]
    for group in sorted(p for p in (ROOT / "conf").iterdir() if p.is_dir()):
        for option in sorted(group.glob("*.yaml")):
            text = option.read_text().splitlines()
            out.append(f"| `{group.name}` | `{option.stem}` | {_first_sentence(text)} |")
    return "\n".join(out)


def bench_tables(name: str) -> str:
    """The tables of ``docs/benchmarks/<name>.json`` (``benchmarks/results.py`` writes them)."""
    path = ROOT / "docs" / "benchmarks" / f"{name}.json"
    if not path.is_file():
        raise DocsError(f"<!-- bench: {name} -->: {path.relative_to(ROOT)} is missing; run benchmarks/bench_{name}.py")
    data = json.loads(path.read_text())
    machine = data["machine"]
    where = machine["device"] if machine.get("device") else machine["cpu"]
    out = [
        f"*Run of `{data['command']}` on {where}, {machine['threads']} threads, torch {machine['torch']}, "
        f"{data['date']}.*",
        "",
    ]
    for table in data["tables"]:
        if table.get("caption"):
            out += [f"**{table['caption']}**", ""]
        out.append("| " + " | ".join(table["columns"]) + " |")
        out.append("| " + " | ".join("---" for _ in table["columns"]) + " |")
        out += ["| " + " | ".join(str(c) for c in row) + " |" for row in table["rows"]]
        out.append("")
    out += [f"- {note}" for note in data.get("notes", [])]
    return "\n".join(out)


def render(markdown: str) -> str:
    def replace(m: re.Match) -> str:
        kind, arg, prefix = m.group(1), m.group(2), m.group(3) or ""
        if kind == "config-groups":
            return config_groups()
        if kind == "config-schema":
            return schema_table(arg, prefix)
        if kind == "bench":
            return bench_tables(arg)
        path = ROOT / arg
        if not path.is_file():
            raise DocsError(f"<!-- include: {arg} -->: no such file")
        return path.read_text().split("\n", 1)[1]  # its own title is the page's

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return render(markdown)
