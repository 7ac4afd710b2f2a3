"""The module map (docs/architecture.md, "Layout") against the files: every path it names exists,
and every module of `jobs/`, `web/`, `support/`, `scripts/` and `bench/` is on it."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "architecture.md"
MAPPED = ("jobs", "web", "support", "scripts", "bench")
# A path on the map: a file with an extension, or a folder ending in "/".
PATH = re.compile(r"^[\w.<>-]+(/[\w.<>-]+)*(/|\.\w+)$|^Procfile$|^Makefile$")
ENTRY = re.compile(r"^( *)(\S.*?)(?: {2,}.*)?$")


def mapped_paths(page_text: str) -> set[str]:
    """The paths the Layout code block names, nested by indentation (two spaces a level)."""
    block = page_text.partition("\n## Layout\n")[2].partition("```\n")[2].partition("```")[0]
    folders: list[str] = []
    paths = set()
    for line in block.splitlines():
        match = ENTRY.match(line)
        if not match:
            continue
        indent, names = len(match.group(1)) // 2, match.group(2).split(", ")
        if not all(PATH.match(name) for name in names):
            continue  # a description carried over from the line above
        folders = folders[:indent]
        for name in names:
            path = "/".join([*folders, name.rstrip("/")])
            paths.add(path)
            if name.endswith("/"):
                folders = [*folders, name.rstrip("/")]
    return paths


def missing_files(paths: set[str], root: Path = ROOT) -> set[str]:
    """Paths on the map that name no file or folder (a `<placeholder>` is a pattern, not a path)."""
    return {path for path in paths if "<" not in path and not (root / path).exists()}


def unmapped_modules(paths: set[str], root: Path = ROOT, packages: tuple[str, ...] = MAPPED) -> set[str]:
    """Python modules of `packages` that the map does not name."""
    modules = {
        str(path.relative_to(root))
        for package in packages
        for path in (root / package).rglob("*.py")
        if path.name != "__init__.py"  # a package marker; one with content is mapped by choice
    }
    return {module for module in modules if module not in paths and not _under_mapped_folder(module, paths)}


def _under_mapped_folder(module: str, paths: set[str]) -> bool:
    # A folder on the map stands for the modules in it when none of them is listed by name.
    folder = module.rpartition("/")[0]
    return folder in paths and not any(path.startswith(folder + "/") for path in paths)


def test_every_path_on_the_map_exists():
    assert missing_files(mapped_paths(PAGE.read_text())) == set()


def test_every_module_is_on_the_map():
    assert unmapped_modules(mapped_paths(PAGE.read_text())) == set()


def test_a_missing_module_and_an_unmapped_one_are_found(tmp_path):
    (tmp_path / "jobs").mkdir()
    for name in ("__init__.py", "keys.py", "new.py"):
        (tmp_path / "jobs" / name).write_text("")
    page = (
        "# Layout page\n\n## Layout\n\n```\njobs/         what runs\n  __init__.py   the package\n"
        "  keys.py, gone.py   keys, and a module since removed\n"
        "                the rest of a description: not a path\n```\n"
    )
    paths = mapped_paths(page)
    assert paths == {"jobs", "jobs/__init__.py", "jobs/keys.py", "jobs/gone.py"}
    assert missing_files(paths, tmp_path) == {"jobs/gone.py"}
    assert unmapped_modules(paths, tmp_path, ("jobs",)) == {"jobs/new.py"}
