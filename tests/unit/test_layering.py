"""The package's layering, checked from its own source: no import cycle, and a pure core.

* The import graph of every module's *module-level* imports, as Python runs them, must be
  acyclic. Imports inside functions (the way to defer a heavy dependency) and under
  ``if TYPE_CHECKING:`` (never run) are not edges.
* Importing the pure core (``verify``, ``receipts``, ``errors``) loads neither the I/O stack
  (httpx, the OpenAI SDK, tenacity) nor any framework; the emulator loads no OpenAI SDK, no
  httpx and no framework (it does load its own server stack: fastapi, starlette, uvicorn).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import redpill_integrations

PACKAGE = Path(redpill_integrations.__file__).parent
ROOT = "redpill_integrations"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
        elif isinstance(node, ast.If | ast.Try):  # optional imports
            pending.extend(node.body)
            pending.extend(node.orelse)
            if isinstance(node, ast.Try):
                for handler in node.handlers:
                    pending.extend(handler.body)
                pending.extend(node.finalbody)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        for node in _top_level_imports(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in files else base)
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_skips_type_checking_and_function_imports() -> None:
    tree = ast.parse(
        "import os\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import json\n"
        "try:\n    import tomllib\nexcept ImportError:\n    import tomli\n"
        "def f():\n    import sqlite3\n"
    )
    names = sorted(
        alias.name
        for node in _top_level_imports(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    )
    assert names == ["os", "tomli", "tomllib"]


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert "redpill_integrations.receipts" in graph["redpill_integrations.wire.verify_flow"]
    assert "redpill_integrations.verify.judgement" in graph["redpill_integrations.receipts"]
    assert len(graph) > 60


def test_the_package_has_no_import_cycle() -> None:
    assert find_cycle(import_graph()) is None


_LOADED = (
    "import importlib, json, sys; importlib.import_module({module!r});"
    "print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
)
IO_STACK = {"httpx", "openai", "tenacity"}
FRAMEWORKS = {"langchain", "langchain_core", "langchain_openai", "llama_index"}


def loaded(module: str) -> set[str]:
    code = _LOADED.format(module=module)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize(
    "module",
    ["redpill_integrations.verify", "redpill_integrations.receipts", "redpill_integrations.errors"],
)
def test_the_pure_core_loads_no_io_stack_and_no_framework(module: str) -> None:
    top = loaded(module)
    assert ROOT in top  # the probe itself works
    assert top & (IO_STACK | FRAMEWORKS) == set()


def test_the_emulator_loads_its_server_but_no_client_stack() -> None:
    top = loaded("redpill_integrations.emulator")
    assert {"fastapi", "uvicorn"} <= top
    assert top & (IO_STACK | FRAMEWORKS) == set()


def test_the_root_loads_no_framework_and_names_load_on_use() -> None:
    assert loaded(ROOT) & (IO_STACK | FRAMEWORKS) == set()
    from redpill_integrations import ResponseUnreadable

    assert ResponseUnreadable.__module__ == "redpill_integrations._adapter.unreadable"
