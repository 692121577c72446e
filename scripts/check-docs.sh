#!/usr/bin/env bash
# Check the reStructuredText under Documentation/ with docutils.
#
#   scripts/check-docs.sh [FILE.rst...]      (default: Documentation/**/*.rst)
#
# Every file is parsed with docutils; any warning or error fails the check.
# The Sphinx and kernel-only markup that our documents may use (toctree,
# kernel-doc, the c: domain, :doc:, :ref:) is registered as no-ops, except
# that toctree entries must name existing documents. Also checked: every
# document under Documentation/ is reachable from Documentation/index.rst,
# no line is longer than 80 columns, no tab or trailing blank.
#
# docutils comes from PyPI into a private venv:
#   ${LUO_CACHE_DIR:-$HOME/.cache/luo-rs}/venv
# Exits 0 when every file is clean, 1 on any problem, 2 on a setup failure.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${LUO_CACHE_DIR:-$HOME/.cache/luo-rs}
venv=$cache/venv
say() { printf '[docs] %s\n' "$*"; }

if [ ! -x "$venv/bin/python" ]; then
	say "creating Python venv $venv"
	mkdir -p "$cache"
	python3 -m venv "$venv" || { say "python3 -m venv failed"; exit 2; }
fi
if ! "$venv/bin/python" -c 'import docutils' 2>/dev/null; then
	say "installing docutils from PyPI into $venv"
	"$venv/bin/pip" install --quiet --disable-pip-version-check docutils ||
		{ say "pip install docutils failed"; exit 2; }
fi

cd "$repo" || exit 2
if [ $# -gt 0 ]; then
	files=("$@")
else
	mapfile -t files < <(find Documentation -name '*.rst' | sort)
fi
[ ${#files[@]} -gt 0 ] || { say "no .rst files under Documentation/"; exit 1; }

"$venv/bin/python" - "${files[@]}" <<'PY'
import os
import sys

import docutils
from docutils import nodes, utils
from docutils.core import publish_doctree
from docutils.parsers.rst import Directive, directives, roles

MAX_COLUMNS = 80
DOC_ROOT = "Documentation"
problems = []
toctree_refs = {}  # document -> documents it lists


def problem(path, line, text):
    problems.append(f"{path}:{line or '?'}: {text}")


class Ignored(Directive):
    """A kernel or Sphinx directive without meaning for plain docutils."""

    has_content = True
    optional_arguments = 20
    final_argument_whitespace = True
    option_spec = None  # any option

    def run(self):
        return []


class TocTree(Directive):
    """Sphinx's toctree: records its entries so they can be checked."""

    has_content = True
    option_spec = {
        "maxdepth": directives.nonnegative_int,
        "caption": directives.unchanged,
        "numbered": directives.flag,
        "hidden": directives.flag,
        "glob": directives.flag,
        "titlesonly": directives.flag,
    }

    def run(self):
        source = self.state.document.current_source
        entries = [e.strip() for e in self.content if e.strip()]
        toctree_refs.setdefault(source, []).extend(
            (e, self.lineno) for e in entries
        )
        return []


class AnyOption(dict):
    """An option_spec that accepts every option unchanged."""

    def __missing__(self, key):
        return directives.unchanged


Ignored.option_spec = AnyOption()

for name in ("kernel-doc", "kernel-abi", "kernel-feat", "c:function",
             "c:struct", "c:type", "c:macro", "c:member", "c:var",
             "c:enum", "c:union", "only", "highlight"):
    directives.register_directive(name, Ignored)
directives.register_directive("toctree", TocTree)


def literal_role(name, rawtext, text, lineno, inliner, options=None,
                 content=None):
    return [nodes.literal(rawtext, utils.unescape(text))], []


for name in ("c:func", "c:type", "c:macro", "c:member", "c:data", "c:expr",
             "c:struct", "c:enum", "c:union", "doc", "ref", "manpage",
             "kbd", "file", "envvar", "option", "command", "program"):
    roles.register_local_role(name, literal_role)

settings = {
    "report_level": 2,   # collect warnings and worse
    "halt_level": 5,     # never stop: report everything
    "warning_stream": False,
    "file_insertion_enabled": False,
    "raw_enabled": False,
    "input_encoding": "utf-8",
}

files = sys.argv[1:]
for path in files:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        problem(path, 0, f"cannot read: {e}")
        continue
    for n, line in enumerate(text.splitlines(), 1):
        if len(line) > MAX_COLUMNS:
            problem(path, n, f"line is {len(line)} columns (max {MAX_COLUMNS})")
        if "\t" in line:
            problem(path, n, "tab character")
        if line != line.rstrip():
            problem(path, n, "trailing whitespace")
    if not text.startswith(".. SPDX-License-Identifier:"):
        problem(path, 1, "first line must be the SPDX license identifier")
    doctree = publish_doctree(text, source_path=path,
                              settings_overrides=settings)
    for msg in doctree.findall(nodes.system_message):
        if msg["level"] >= 2:
            text = msg.children[0].astext() if msg.children else ""
            problem(msg.get("source") or path, msg.get("line"),
                    f"{msg['type']}: {text}")
    if not doctree.findall(nodes.title):
        problem(path, 1, "document has no title")

# toctree entries must exist; every document must be listed from index.rst.
listed = set()
for source, entries in toctree_refs.items():
    base = os.path.dirname(source)
    for entry, lineno in entries:
        target = os.path.normpath(os.path.join(base, entry + ".rst"))
        if not os.path.isfile(target):
            problem(source, lineno, f"toctree entry '{entry}' not found")
        listed.add(target)
index = os.path.join(DOC_ROOT, "index.rst")
for path in files:
    norm = os.path.normpath(path)
    if norm.startswith(DOC_ROOT + os.sep) and norm != index \
            and norm not in listed:
        problem(path, 1, "not listed in any toctree")

for p in problems:
    print(p)
print(f"[docs] docutils {docutils.__version__}: {len(files)} files, "
      f"{len(problems)} problems")
sys.exit(1 if problems else 0)
PY
