"""The shape of `codegen`: its import graph, its layering, its file and function sizes, and which of
its modules are entry points. Static (``ast``): nothing here imports a codegen module.

Every ``import`` and ``from ... import`` counts, including those inside functions (a lazy import is
still a dependency). ``from codegen.pkg import name`` is an edge to ``codegen.pkg.name`` when ``name``
is a submodule, else to ``codegen.pkg``.
"""
from __future__ import annotations

import ast
import tomllib
from collections import deque
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOP = "codegen"

# -- the contract -------------------------------------------------------------------------------------

# The top-level modules that everything may use; together they are the package "base".
# (`codegen/__init__.py` only holds __version__.)
BASE_MODULES = {"codegen", "codegen.errors", "codegen.resources", "codegen.progress"}

# package -> the other packages it may import (a package may always import itself). `__main__` is
# codegen/__main__.py, `python -m codegen`.
LAYERS: dict[str, set[str]] = {
    "base": set(),
    "model": {"base"},
    "toolchain": {"base", "model"},
    "oracle": {"base", "model", "toolchain"},
    "quantize": {"base", "model", "oracle", "toolchain"},
    "project": {"base", "model", "oracle", "toolchain"},            # never run, quantize or cli
    "run": {"base", "model", "oracle", "toolchain", "project"},
    "cli": {"base", "model", "toolchain", "oracle", "quantize", "project", "run"},    # anything
    "__main__": {"cli"},
}

CLI_MAX_LINES = 250         # every file in codegen/cli/, and the module of the `tfgen` entry point
MODULE_MAX_LINES = 450      # every other module, but for SIZE_EXCEPTIONS
FUNCTION_MAX_LINES = 75     # any function or method, nested ones included

# path -> why it is over MODULE_MAX_LINES. The test fails once a file here gets under the limit, so
# that its entry is removed rather than left to excuse the next growth.
# Format: {"codegen/pkg/mod.py": "why, in one phrase"}. Empty: no module outside the CLI is over.
SIZE_EXCEPTIONS: dict[str, str] = {}

# Modules that may be run as programs (a module-level `def main(` or an `if __name__ == "__main__"`),
# besides the CLI itself (codegen/cli/, codegen/__main__.py). Developer tools belong in tools/, not in
# the wheel.
ENTRY_POINTS = {
    "codegen/oracle/worker.py": "the oracle's subprocess, `python -m codegen.oracle.worker`",
}


# -- the graph ----------------------------------------------------------------------------------------

def module_files(root: Path, top: str = TOP) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under root/top (a package is its __init__.py)."""
    modules = {}
    for path in sorted((root / top).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imported(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool) -> list[tuple[str, str | None]]:
    """(module, name) pairs an import statement asks for; name is None for `import a.b`."""
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names]
    base = node.module or ""
    if node.level:                                      # relative: from the importer's package
        package = importer.split(".") if is_package else importer.split(".")[:-1]
        anchor = package[:len(package) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    return [(base, alias.name) for alias in node.names]


def import_edges(root: Path, top: str = TOP) -> tuple[dict[tuple[str, str], list[str]], list[str]]:
    """({(importer, imported): ["file:line", ...]}, [unresolvable codegen imports]) over root/top."""
    modules = module_files(root, top)
    edges: dict[tuple[str, str], list[str]] = {}
    broken = []
    for src, path in modules.items():
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=rel)):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for module, name in _imported(node, src, path.name == "__init__.py"):
                if module != top and not module.startswith(top + "."):
                    continue
                if name is not None and f"{module}.{name}" in modules:
                    dst = f"{module}.{name}"             # from pkg import submodule
                elif module in modules:
                    dst = module
                else:
                    broken.append(f"{rel}:{node.lineno} imports {module}{'.' + name if name else ''}")
                    continue
                if dst != src:                           # a module naming itself is no dependency
                    edges.setdefault((src, dst), []).append(f"{rel}:{node.lineno}")
    return edges, broken


def package_of(module: str) -> str | None:
    if module in BASE_MODULES:
        return "base"
    parts = module.split(".")
    if parts == [TOP, "__main__"]:
        return "__main__"
    if len(parts) >= 3:                                  # codegen.<package>.<module>
        return parts[1]
    if (REPO / TOP / parts[1]).is_dir():                 # codegen.<package> (its __init__.py)
        return parts[1]
    return None                                          # a top-level module nobody has placed


def graph_of(pairs: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for a, b in pairs:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    return graph


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One shortest cycle [a, b, ..., a] through each strongly connected component that has one
    (Tarjan's algorithm, then a breadth-first search inside the component from its smallest node)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:                          # v is the root of a component: pop it
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)

    cycles = []
    for component in components:
        start = min(component)
        came_from: dict[str, str] = {}
        queue = deque([start])
        while queue:
            v = queue.popleft()
            if start in graph.get(v, ()):                # back at the start: unwind the path
                path = [start]
                while v != start:
                    path.append(v)
                    v = came_from[v]
                cycles.append([start, *reversed(path[1:]), start])
                break
            for w in sorted(graph.get(v, ())):
                if w in component and w not in came_from and w != start:
                    came_from[w] = v
                    queue.append(w)
    return sorted(cycles)


@lru_cache(maxsize=None)
def codegen_graph() -> tuple[dict[tuple[str, str], list[str]], list[str]]:
    return import_edges(REPO)


def _where(edge: tuple[str, str]) -> str:
    return ", ".join(codegen_graph()[0][edge])


def _package_edges() -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(importing package, imported package) -> the module edges behind it."""
    out: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for a, b in codegen_graph()[0]:
        pa, pb = package_of(a), package_of(b)
        if pa != pb:
            out.setdefault((pa, pb), []).append((a, b))
    return out


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


@lru_cache(maxsize=None)
def _sources() -> dict[str, tuple[str, ast.Module]]:
    """path relative to the checkout -> (text, tree), for every module."""
    out = {}
    for path in module_files(REPO).values():
        text = path.read_text(encoding="utf-8")
        out[_rel(path)] = (text, ast.parse(text, filename=_rel(path)))
    return out


def _cli_limited() -> set[str]:
    """Every file in codegen/cli/, and the module that holds the `tfgen` script's entry point."""
    script = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["tfgen"]
    entry = _rel(module_files(REPO)[script.split(":")[0]])
    return {p for p in _sources() if p.startswith(f"{TOP}/cli/")} | {entry}


# -- the checker's own tests --------------------------------------------------------------------------

def test_find_cycles_on_hand_made_graphs():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a"}}) == []
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"a"}}) == [["a", "a"]]
    # two components; the reported cycle is the shortest through each component's smallest node
    assert find_cycles({"a": {"b", "x"}, "x": {"y"}, "y": {"a"}, "b": {"a"}, "p": {"q"}, "q": {"p"}}) \
        == [["a", "b", "a"], ["p", "q", "p"]]


def test_import_resolution_on_a_hand_made_tree(tmp_path):
    pkg = tmp_path / "codegen"
    (pkg / "sub").mkdir(parents=True)
    for name in ("__init__.py", "errors.py", "sub/__init__.py", "sub/mod.py"):
        (pkg / name).write_text("")
    (pkg / "sub" / "user.py").write_text(
        "import os\n"
        "from codegen.sub import mod, NAME\n"             # a submodule, and a name from sub/__init__
        "def f():\n"
        "    from codegen.errors import TfgenError\n"     # inside a function: still counts
        "    from . import mod\n"
        "    import codegen.nothere\n")
    edges, broken = import_edges(tmp_path)
    assert edges == {("codegen.sub.user", "codegen.sub.mod"): ["codegen/sub/user.py:2", "codegen/sub/user.py:5"],
                     ("codegen.sub.user", "codegen.sub"): ["codegen/sub/user.py:2"],
                     ("codegen.sub.user", "codegen.errors"): ["codegen/sub/user.py:4"]}
    assert broken == ["codegen/sub/user.py:6 imports codegen.nothere"]


# -- the import graph ---------------------------------------------------------------------------------

def test_every_codegen_import_names_an_existing_module():
    broken = codegen_graph()[1]
    assert not broken, "imports of codegen modules that do not exist:\n  " + "\n  ".join(broken)


def test_no_import_cycle_between_modules():
    edges = codegen_graph()[0]
    cycles = find_cycles(graph_of(edges))
    assert not cycles, "import cycles between modules:\n" + "\n".join(
        "  " + " -> ".join(c) + "\n" + "".join(f"      {a} -> {b}  ({_where((a, b))})\n" for a, b in zip(c, c[1:]))
        for c in cycles)


def test_every_module_is_in_a_package_of_the_contract():
    unplaced = sorted(m for m in module_files(REPO) if package_of(m) not in LAYERS)
    assert not unplaced, f"modules outside every package of LAYERS (add them to BASE_MODULES or LAYERS): {unplaced}"


def test_the_contract_itself_has_no_cycle():
    assert find_cycles(LAYERS) == []


def test_no_import_cycle_between_packages():
    by_package = _package_edges()
    cycles = find_cycles(graph_of(by_package))
    assert not cycles, "import cycles between packages:\n" + "\n".join(
        "  " + " -> ".join(c) + "\n" + "".join(
            f"      {pa} -> {pb}: {a} -> {b}  ({_where((a, b))})\n"
            for pa, pb in zip(c, c[1:]) for a, b in sorted(by_package[(pa, pb)]))
        for c in cycles)


def test_layering():
    bad = [f"  {a} -> {b}  ({pa} may not import {pb}; {_where((a, b))})"
           for (pa, pb), pairs in sorted(_package_edges().items())
           if pb not in LAYERS.get(pa, set())
           for a, b in sorted(pairs)]
    assert not bad, "imports against the layering (LAYERS in this file):\n" + "\n".join(bad)


# -- sizes --------------------------------------------------------------------------------------------

def test_cli_files_are_small():
    big = {p: len(_sources()[p][0].splitlines()) for p in sorted(_cli_limited())}
    big = {p: n for p, n in big.items() if n >= CLI_MAX_LINES}
    assert not big, f"CLI files of {CLI_MAX_LINES} lines or more: " + ", ".join(f"{p} ({n})" for p, n in big.items())


def test_modules_are_under_the_size_limit():
    cli = _cli_limited()                      # those have the stricter limit above
    sizes = {p: len(text.splitlines()) for p, (text, _) in _sources().items() if p not in cli}
    big = [f"{p} ({n})" for p, n in sorted(sizes.items()) if n >= MODULE_MAX_LINES and p not in SIZE_EXCEPTIONS]
    assert not big, f"modules of {MODULE_MAX_LINES} lines or more: {', '.join(big)} (split them)"


def test_size_exceptions_are_still_needed():
    sizes = {p: len(text.splitlines()) for p, (text, _) in _sources().items()}
    stale = [f"{p} ({sizes[p]} lines)" if p in sizes else f"{p} (no such module)"
             for p in sorted(SIZE_EXCEPTIONS) if sizes.get(p, 0) < MODULE_MAX_LINES]
    assert not stale, f"SIZE_EXCEPTIONS entries no longer over {MODULE_MAX_LINES} lines (remove them): {stale}"


def test_functions_are_short():
    long = [f"{p}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for p, (_, tree) in sorted(_sources().items()) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > FUNCTION_MAX_LINES]
    assert not long, f"functions over {FUNCTION_MAX_LINES} lines:\n  " + "\n  ".join(long)


# -- what the wheel carries ---------------------------------------------------------------------------

def _runnable(tree: ast.Module) -> list[str]:
    """Why a module is a program: a module-level `def main(`, an `if __name__ == "__main__":`."""
    why = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "main":
            why.append(f"def main( at line {node.lineno}")
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) \
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__":
            why.append(f"__main__ guard at line {node.lineno}")
    return why


def test_no_developer_tools_in_the_package():
    allowed = set(ENTRY_POINTS) | _cli_limited() | {f"{TOP}/__main__.py"}
    tools = [f"  {p}: {', '.join(why)}" for p, (_, tree) in sorted(_sources().items())
             if p not in allowed and (why := _runnable(tree))]
    assert not tools, ("modules with a main() that are neither the CLI nor in ENTRY_POINTS "
                       "(move the tool to tools/):\n" + "\n".join(tools))


def test_code_outside_the_package_imports_what_exists():
    """bench/, tools/, tests/ and examples/ import names of codegen that are there: a module moved
    or a name renamed in codegen breaks them at once, not when a slow test or a user gets there."""
    import importlib
    broken = []
    for folder in ("bench", "tools", "tests", "examples"):
        for path in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                        and node.module.split(".")[0] == TOP):
                    continue
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if hasattr(module, alias.name):
                        continue
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ModuleNotFoundError:
                        broken.append(f"{path.relative_to(REPO)}:{node.lineno}: from {node.module} import {alias.name}")
    assert not broken, "imports of names codegen does not have:\n  " + "\n  ".join(broken)
