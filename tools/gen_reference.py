"""Generate the reference parts of the user guide from the code, so that they cannot drift.

* ``docs/configuration.md``: the presets and one table per section of every :class:`Config` key
  (its type and default from the dataclass, the values it accepts from :data:`RULES`, what it does
  from the comment beside the field in ``src/dcinet/config.py``, and the presets that set it);
* ``docs/cli.md``: every verb of ``dcinet`` with its usage line and arguments, from the argparse
  parsers (:func:`dcinet.app.cli.build_parser`).

Only the text between ``<!-- generated: NAME ... -->`` and ``<!-- end generated: NAME -->`` is
rewritten; the prose around it is the guide's own.

    python tools/gen_reference.py           # rewrite the generated parts
    python tools/gen_reference.py --check   # exit 1 naming each file that is out of date
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import io
import re
import sys
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG_SOURCE = REPO / "src" / "dcinet" / "config.py"
DOCS = REPO / "docs"
COMMAND = "python tools/gen_reference.py"
SECTION = re.compile(r"#\s*---\s*(.+?)\s*---\s*$")


# --- reading the comments of config.py ------------------------------------------------------

def _comments(source: str) -> dict[int, tuple[str, bool]]:
    """Line number -> (comment text without ``#``, whether the comment is alone on its line)."""
    out: dict[int, tuple[str, bool]] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            alone = not tok.line[:tok.start[1]].strip()
            out[tok.start[0]] = (tok.string.lstrip("#").strip(), alone)
    return out


def _described(items: list[tuple[str, int, int]], comments: dict[int, tuple[str, bool]],
               stop: int) -> dict[str, str]:
    """The comment of each item ``(name, first line, last line)``: the comments on its own lines,
    continued by the comment lines right below it when it has one (a comment alone on its line
    after an item without a comment introduces what follows, and is not its description)."""
    out = {}
    for n, (name, first, last) in enumerate(items):
        parts = [comments[line][0] for line in range(first, last + 1)
                 if line in comments and not comments[line][1]]
        end = items[n + 1][1] if n + 1 < len(items) else stop
        line = last + 1
        while parts and line < end and line in comments and comments[line][1] \
                and not SECTION.match("#" + comments[line][0]):
            parts.append(comments[line][0])
            line += 1
        out[name] = " ".join(p for p in parts if p)
    return out


def config_comments(source: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """From the source of ``config.py``: each :class:`Config` field's comment, its section (the
    ``# --- name ---`` line above it) and the comment beside its rule in ``RULES``."""
    tree = ast.parse(source)
    comments = _comments(source)
    fields: list[tuple[str, int, int]] = []
    rules: list[tuple[str, int, int]] = []
    rules_end = 0
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Config":
            fields = [(st.target.id, st.lineno, st.end_lineno) for st in node.body
                      if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)]
            class_end = node.end_lineno
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == "RULES" and isinstance(node.value, ast.Dict):
            rules = [(key.value, key.lineno, value.end_lineno)
                     for key, value in zip(node.value.keys, node.value.values, strict=True)
                     if isinstance(key, ast.Constant)]
            rules_end = node.end_lineno
    if not fields or not rules:
        raise SystemExit(f"{CONFIG_SOURCE}: no Config class or no RULES dict found")
    sections, current = {}, ""
    starts = {first: name for name, first, _ in fields}
    for line in range(fields[0][1] - 5, class_end + 1):
        if line in comments and comments[line][1] and (m := SECTION.match("#" + comments[line][0])):
            current = m.group(1)
        if line in starts:
            sections[starts[line]] = current
    return (_described(fields, comments, class_end + 1), sections,
            _described(rules, comments, rules_end + 1))


# --- rendering ------------------------------------------------------------------------------

def cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped, and outside code spans
    ``<`` ``>`` as entities (``<modality>`` would otherwise vanish as an HTML tag)."""
    parts = " ".join(str(text).split()).replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):  # the even parts are outside code spans
        parts[i] = parts[i].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def yaml_value(value: object) -> str:
    """A value as it is written in a YAML preset or a ``key=value`` override."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    return str(value)


def code(text: str) -> str:
    return f"`{text}`"


def _preset_comment(path: Path) -> str:
    """The comment block at the top of a preset file, as one paragraph."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(x for x in lines if x)


def config_reference() -> str:
    """The generated part of ``docs/configuration.md``."""
    import yaml

    from dcinet.config import PRESET_DIR, RULES, Config, preset_names

    described, sections, rule_notes = config_comments(CONFIG_SOURCE.read_text(encoding="utf-8"))
    presets = {name: yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text(encoding="utf-8")) or {}
               for name in preset_names()}
    defaults = Config()
    out = ["## Presets", ""]
    for name in presets:
        out += [f"- **`{name}`** (`src/dcinet/configs/{name}.yaml`, {len(presets[name])} keys): "
                f"{cell(_preset_comment(PRESET_DIR / f'{name}.yaml'))}"]
    out += ["", "## Every key", "",
            f"{len(dataclasses.fields(Config))} keys. *Default*: the value without a preset "
            "(the paper's where it gives one). *Accepts*: what `validate` checks before any work; "
            "a value outside it stops the command with one line naming the key."]
    current = None
    for f in dataclasses.fields(Config):
        section = sections.get(f.name, "") or "other"
        if section != current:
            current = section
            out += ["", f"### {section[0].upper()}{section[1:]}", "",
                    "| key | type | default | accepts | what it does | presets |",
                    "|---|---|---|---|---|---|"]
        accepts = RULES[f.name][1] + (f" ({rule_notes[f.name]})" if rule_notes.get(f.name) else "")
        set_by = ", ".join(f"{p}: {code(yaml_value(v[f.name]))}" for p, v in presets.items()
                           if f.name in v)
        out.append("| " + " | ".join([
            code(f.name), code(cell(f.type)), code(cell(yaml_value(getattr(defaults, f.name)))),
            cell(accepts), cell(described.get(f.name, "")), cell(set_by)]) + " |")
    return "\n".join(out).lstrip("\n") + "\n"


def _commands(parser: argparse.ArgumentParser, prefix: str):
    """``(command words, parser, help)`` of every verb under ``parser``, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                words = f"{prefix} {name}"
                if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    yield words, sub, helps.get(name) or ""
                    yield from _commands(sub, words)
                else:
                    yield words, sub, helps.get(name) or ""


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=10_000)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return " ".join(formatter.format_help().split())


def _argument(action: argparse.Action) -> str:
    if not action.option_strings:
        return action.metavar or action.dest
    metavar = ""
    if action.nargs != 0:
        metavar = " " + (action.metavar if isinstance(action.metavar, str)
                         else action.dest.upper())
    return ", ".join(s + metavar for s in action.option_strings)


def _help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%" in text:
        params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
        params["prog"] = prog
        for key in ("choices", "default"):
            if isinstance(params.get(key), (list, tuple)):
                params[key] = ", ".join(map(str, params[key]))
        text = text % params
    if action.choices and not isinstance(action, argparse._SubParsersAction):
        text += f" (one of: {', '.join(map(str, action.choices))})"
    if action.required and action.option_strings:
        text += " (required)"
    return text


def _default(action: argparse.Action) -> str:
    value = action.default
    if action.required or value in (None, argparse.SUPPRESS) or action.nargs == 0:
        return ""
    if isinstance(value, list) and not value:
        return ""
    return code(cell(yaml_value(value)))


def cli_reference() -> str:
    """The generated part of ``docs/cli.md``."""
    from dcinet.app.cli import build_parser

    root = build_parser()
    commands = list(_commands(root, "dcinet"))
    out = ["| command | what it does |", "|---|---|"]
    for words, parser, summary in commands:
        if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            out.append(f"| [`{words}`](#{slug(words)}) | {cell(summary)} |")
    for words, parser, summary in commands:
        group = any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
        out += ["", f"## {words}", ""]
        for text in (summary, parser.description):
            if text:
                out += [cell(text[0].upper() + text[1:] + ("" if text[-1] in ".:)" else ".")), ""]
        out += ["```", _usage(parser).replace(parser.prog, words, 1), "```"]
        if group:
            continue
        rows = [a for a in parser._actions
                if a.help is not argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]
        if rows:
            out += ["", "| argument | default | meaning |", "|---|---|---|"]
            out += [f"| `{cell(_argument(a))}` | {_default(a)} | {cell(_help(a, words))} |"
                    for a in rows]
    return "\n".join(out) + "\n"


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: the rendered text lowercased, punctuation other than
    ``-`` and ``_`` removed, spaces made ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # outside code spans: inline HTML is not text
        parts[i] = re.sub(r"<[^>]+>", "", parts[i])
    return re.sub(r"[^\w\- ]", "", "".join(parts).strip().lower()).replace(" ", "-")


# --- the files ------------------------------------------------------------------------------

GENERATORS = {"config-keys": (DOCS / "configuration.md", config_reference),
              "cli": (DOCS / "cli.md", cli_reference)}


def _markers(name: str) -> tuple[str, str]:
    return (f"<!-- generated: {name} by `{COMMAND}` from the code; edit the code, then rerun -->",
            f"<!-- end generated: {name} -->")


def render(path: Path, name: str, body: str) -> str:
    """``path``'s text with the part between ``name``'s markers replaced by ``body``."""
    begin, end = _markers(name)
    text = path.read_text(encoding="utf-8")
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise SystemExit(f"{path}: no generated part '{name}' (a line '{begin}' and, below it, "
                         f"'{end}')")
    return text[:start + len(begin)] + "\n\n" + body + "\n" + text[stop:]


def stale(names: list[str] | None = None) -> list[Path]:
    """The files whose generated parts differ from what the code gives now."""
    out = []
    for name, (path, generate) in GENERATORS.items():
        if names is None or name in names:
            if render(path, name, generate()) != path.read_text(encoding="utf-8"):
                out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a generated part is out of date")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for path in out_of_date:
            print(f"{path.relative_to(REPO)} is out of date with the code: run `{COMMAND}`",
                  file=sys.stderr)
        return 1 if out_of_date else 0
    for name, (path, generate) in GENERATORS.items():
        text = render(path, name, generate())
        if text != path.read_text(encoding="utf-8"):
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
