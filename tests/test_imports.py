"""The Architecture page's claims about imports, tested: no cycle between the modules of `jobs/` or
`web/`, and `jobs` never imports `web` or Flask (the worker runs without an app).

Every import counts, also one inside a function: an import put off to run time still ties the two
modules together (it only hides the cycle from the interpreter).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("jobs", "web")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path, known: set[str]) -> set[str]:
    """The modules `path` imports, anywhere in it, as dotted names (submodules resolved when known)."""
    here = module_name(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return found


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the modules it imports, for every module of `packages` under `root` (all imports kept)."""
    files = [path for package in packages for path in sorted((root / package).rglob("*.py"))]
    known = {module_name(path, root) for path in files}
    return {module_name(path, root): imports_of(path, root, known) for path in files}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (or a module importing itself), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module] & graph.keys()):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while (member := stack.pop()) != module:
                group.append(member)
            group.append(module)
            if len(group) > 1 or module in graph[module]:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


# What each package must never import: the worker runs without an app; `support/` is for tests.
NEVER = {"jobs": {"web", "flask", "support"}, "web": {"support"}}


def forbidden(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs that break `NEVER`, e.g. a `jobs` module importing `web` or Flask."""
    return sorted(
        (module, imported)
        for module, imported_set in graph.items()
        for imported in imported_set
        if imported.split(".")[0] in NEVER.get(module.split(".")[0], set())
    )


def test_no_import_cycle_in_jobs_or_web():
    assert cycles(import_graph(ROOT)) == []


def test_jobs_never_imports_web_or_flask_and_neither_imports_support():
    assert forbidden(import_graph(ROOT)) == []


@pytest.fixture
def tree(tmp_path):
    """Write a tiny package tree: {"pkg/a.py": "source"} -> its root."""

    def write(files: dict[str, str]) -> Path:
        for name, source in files.items():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(source)
        return tmp_path

    return write


def test_a_cycle_through_an_import_inside_a_function_is_found(tree):
    root = tree(
        {
            "jobs/__init__.py": "",
            "jobs/a.py": "from jobs.b import f\n",
            "jobs/b.py": "def f():\n    from jobs import a\n",
            "jobs/c.py": "from . import a\n",
        }
    )
    assert cycles(import_graph(root, ("jobs",))) == [["jobs.a", "jobs.b"]]


def test_a_longer_cycle_across_packages_is_found(tree):
    root = tree(
        {
            "jobs/__init__.py": "",
            "web/__init__.py": "",
            "web/x.py": "import web.y\n",
            "web/y.py": "from web.z import thing\n",
            "web/z.py": "from web import x\n",
        }
    )
    assert cycles(import_graph(root)) == [["web.x", "web.y", "web.z"]]


def test_jobs_importing_web_or_flask_is_found(tree):
    root = tree(
        {
            "jobs/__init__.py": "",
            "jobs/a.py": "def f():\n    from web.errors import error_response\n",
            "jobs/b.py": "import flask\n",
            "web/__init__.py": "",
            "web/errors.py": "import jobs.a\nfrom support.wait import wait_until\n",
        }
    )
    graph = import_graph(root)
    assert forbidden(graph) == [("jobs.a", "web.errors"), ("jobs.b", "flask"), ("web.errors", "support.wait")]
    assert cycles(graph) == [["jobs.a", "web.errors"]]
