"""The one entry point of the load tests and benchmarks: `python -m loadtest BENCHMARK [ARGS]`.

    python -m loadtest --help                 # the benchmarks, one line each
    python -m loadtest benchmark --quick      # one of them, with its own options
    python -m loadtest tracing --help         # a benchmark's options

A benchmark is a module of `loadtest/scenarios/` that runs as a program (`if __name__ ==
"__main__"`, calling its `main()`); its name is the module's. The list is read from the modules' source (their first
docstring line), so `--help` imports none of them.
"""

from __future__ import annotations

import ast
import importlib
import sys
import textwrap
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
USAGE = "usage: python -m loadtest BENCHMARK [ARGS]   (python -m loadtest BENCHMARK --help: its options)"


def benchmarks() -> dict[str, str]:
    """Every runnable scenario module, by name, with the first line of its docstring."""
    found = {}
    for path in sorted(SCENARIOS.glob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        runnable = any(
            isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body
        )
        if runnable:
            docstring = ast.get_docstring(tree) or ""
            found[path.stem] = docstring.split("\n\n")[0].replace("\n", " ")
    return found


def usage(found: dict[str, str]) -> str:
    width = max(map(len, found))
    lines = [USAGE, "", "Benchmarks (loadtest/scenarios/):"]
    lines += [
        f"  {name.ljust(width)}  {textwrap.shorten(summary, 96 - width, placeholder=' …')}"
        for name, summary in found.items()
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    found = benchmarks()
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(found))
        return 0 if argv else 2
    name, *rest = argv
    if name not in found:
        print(f"unknown benchmark {name!r}\n\n{usage(found)}", file=sys.stderr)
        return 2
    # The benchmark's own parser reads sys.argv, and names the command from its first item.
    sys.argv = [f"python -m loadtest {name}", *rest]
    return importlib.import_module(f"loadtest.scenarios.{name}").main() or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
