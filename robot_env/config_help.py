"""``hilr <verb> --help``: every option of a verb's composed config with its YAML comment.

Hydra's own help prints the config through OmegaConf, which drops comments; the comments
are where this repo documents units, frames and choices. Here the config is composed as
the verb would compose it (same overrides), and each leaf is shown as
``key: value  # comment`` with the comment read from the YAML file that set it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z0-9_.\-]+|\"[^\"]*\"|'[^']*')\s*:(?P<rest>\s.*|)$")
_PACKAGE = re.compile(r"^#\s*@package\s+(\S+)")
_DEFAULT = re.compile(r"^\s*-\s*(?P<group>[A-Za-z0-9_/]+)\s*:\s*\S+\s*#\s*(?P<comment>.*)$")


def _split_comment(text: str) -> tuple[str, str]:
    """``(value, comment)`` of a YAML line's tail; a ``#`` inside quotes is not a comment."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip(), text[i + 1:].strip()
    return text.rstrip(), ""


def yaml_comments(path: str | Path, package: str = "") -> dict[str, str]:
    """Dotted key -> comment of every mapping key in a YAML config file.

    A key's comment is the one on its own line, or else the comment lines right above it
    (not the file's header block).

    Args:
        path: the YAML file.
        package: dotted prefix of the file's keys in the composed config (``robot`` for
            ``robot/sim.yaml``); ``""`` for a global file.
    """
    lines = Path(path).read_text().splitlines()
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []  # (indent, key) of the open mappings
    above: list[str] = []
    seen_key = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("#").strip())
            continue
        if not stripped:
            above = []
            continue
        match = _KEY.match(line)
        if not match or stripped.startswith("- "):
            above = []
            continue
        indent, key = len(match["indent"]), match["key"].strip("\"'")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([p for p in [package] if p] + [k for _, k in stack] + [key])
        _, comment = _split_comment(match["rest"])
        if not comment and above and seen_key:
            comment = " ".join(above)
        if comment:
            comments[dotted] = comment
        stack.append((indent, key))
        above, seen_key = [], True
    return comments


def defaults_comments(path: str | Path) -> dict[str, str]:
    """Group -> comment of the ``- group: option  # comment`` lines of a defaults list."""
    out = {}
    for line in Path(path).read_text().splitlines():
        match = _DEFAULT.match(line)
        if match:
            out[match["group"].replace("/", ".")] = match["comment"].strip()
    return out


def file_package(path: Path, group: str) -> str:
    """The package a group file's keys land in: its ``# @package`` header, else the group path."""
    for line in path.read_text().splitlines()[:5]:
        match = _PACKAGE.match(line.strip())
        if match:
            package = match.group(1)
            return "" if package == "_global_" else package.replace("_group_", group.replace("/", "."))
    return group.replace("/", ".")


def header(path: Path) -> list[str]:
    """The comment block at the top of a YAML file, without the ``#``."""
    out = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if not _PACKAGE.match(line):
            out.append(line[1:].rstrip()[1:] if line[1:2] == " " else line[1:].rstrip())
    return out


def _tree(node: dict, comments: dict[str, str], prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """``(yaml line, comment)`` rows of a nested config, parents before their children."""
    rows: list[tuple[str, str]] = []
    for key, value in node.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        pad = "  " * depth
        if isinstance(value, dict) and value:
            rows.append((f"{pad}{key}:", comments.get(dotted, "")))
            rows += _tree(value, comments, dotted, depth + 1)
        else:
            rows.append((f"{pad}{key}: {_show(value)}", comments.get(dotted, "")))
    return rows


def _show(value: Any) -> str:
    """A config value as it would be typed on the command line (flow-style lists and dicts)."""
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and not value.isprintable():  # e.g. the Esc key: show it escaped
        return json.dumps(value)
    return str(value)


def _group_file_comments(config_dir: Path, group: str, choice: str, seen: frozenset = frozenset()) -> dict[str, str]:
    """Comments of a group file and, first, of the same-group files its own defaults list names."""
    path = config_dir / group / f"{choice}.yaml"
    if not path.is_file() or path in seen:
        return {}
    comments: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*-\s*([A-Za-z0-9_]+)\s*(#.*)?$", line)  # `- gym`: a file of this group
        if match and match.group(1) != "_self_":
            comments.update(_group_file_comments(config_dir, group, match.group(1), seen | {path}))
    comments.update(yaml_comments(path, file_package(path, group)))
    return comments


def verb_help(verb: str, config_name: str, overrides: list[str], config_dir: Path, summary: str = "",
              positional: tuple[str, ...] = ()) -> str:
    """The text of ``hilr <verb> --help``: config groups with their options, then every option.

    Args:
        verb: the verb as typed (``train-bc``).
        config_name: its primary config (``train_bc``).
        overrides: the other command-line words, so ``teleop=spacemouse --help`` shows those.
        config_dir: the configs' folder.
        summary: one-line description of the verb.
        positional: keys its leading bare words set (``show``: ``dataset``, ``episode``).
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    choices = {g: c for g, c in OmegaConf.to_container(cfg.hydra.runtime.choices).items()
               if not g.startswith("hydra") and c is not None}
    primary = config_dir / f"{config_name}.yaml"
    comments: dict[str, str] = {}
    for group, choice in choices.items():
        comments.update(_group_file_comments(config_dir, group, choice))
    comments.update(defaults_comments(primary))  # a group's section: its line in the defaults list
    comments.update(yaml_comments(primary))  # the verb's own file sets (and documents) last
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra", None)

    lines = [f"hilr {verb}: {summary}" if summary else f"hilr {verb}", ""]
    lines += [f"  {text}" for text in header(primary)]
    words = "".join(f" [<{key}>" for key in positional) + "]" * len(positional)
    lines += ["", f"usage: hilr {verb}{words} [group=option ...] [key=value ...] [--verbose] [--help]", ""]
    if choices:
        lines.append("config groups (group=option):")
        width = max(len(g) for g in choices)
        for group, choice in choices.items():
            folder = config_dir / group
            options = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
            lines.append(f"  {group + ':':<{width + 1}} {choice:<20} options: {', '.join(options)}")
        lines.append("")
    lines.append("options (override a nested one as a.b.c=value; current values shown):")
    rows = _tree(plain, comments)
    width = min(52, max(len(r[0]) for r in rows))
    for left, comment in rows:
        lines.append(f"  {left:<{width}}  # {comment}" if comment else f"  {left}")
    lines += ["", "Failures print one line and exit non-zero; add --verbose for the traceback.",
              "The resolved config of every run is saved as <run dir>/config_resolved.yaml."]
    return "\n".join(lines)
