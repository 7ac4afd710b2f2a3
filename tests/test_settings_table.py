"""The README's configuration table against the code: every setting something reads is in the table,
and the table names none that nothing reads.

Read means: `os.environ` (or `os.getenv`) read by name anywhere in `jobs/`, `web/` or `scripts/`
(`scripts/run.py` reads its copy of the environment, `env`); the web's settings in `web/config.py`
(`DEFAULTS`; Flask's own settings need no row: the README says any of them may be set);
and `${NAME}` in the Procfile.
"""

import ast
import re
from pathlib import Path

from flask import Flask

from web.config import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("jobs", "web", "scripts")
# Names the environment holds for the system, not for us.
SYSTEM = {"PATH"}
ENVIRONMENT_NAMES = {"environ", "env"}


def _is_environment(node: ast.expr) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
    return name in ENVIRONMENT_NAMES


def environment_reads(source: str) -> set[str]:
    """The setting names a Python source reads from the environment by a constant name: a string
    literal, or a module-level name bound to one (`OVERRIDE_VARIABLE = "RQ_UNVERIFIED_OK"`)."""
    tree = ast.parse(source)
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    names = set()
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environment(node.value):
            key = node.slice
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            getter = node.func
            if getter.attr in ("get", "setdefault") and _is_environment(getter.value):
                key = node.args[0]
            elif getter.attr == "getenv":
                key = node.args[0]
        value = constants.get(key.id) if isinstance(key, ast.Name) else getattr(key, "value", None)
        if isinstance(value, str) and value.isupper():
            names.add(value)
    return names


def settings_read(root: Path = ROOT, web_settings: dict | None = None) -> set[str]:
    """Every setting the code reads: the environment by name, the web's settings, the Procfile's."""
    names = {
        name
        for package in SOURCES
        for path in sorted((root / package).rglob("*.py"))
        for name in environment_reads(path.read_text())
    }
    names |= set(DEFAULTS if web_settings is None else web_settings)
    procfile = root / "Procfile"
    if procfile.exists():
        names |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", procfile.read_text()))
    return names - SYSTEM


def documented(readme: str) -> set[str]:
    """The names in the first column of the README's configuration table."""
    section = readme.partition("\n## Configuration\n")[2].partition("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])}


def mismatches(read: set[str], table: set[str]) -> tuple[set[str], set[str]]:
    """(read but not in the table, in the table but read nowhere); Flask's own settings need no row."""
    return (read - table - set(Flask.default_config)), (table - read)


def test_every_setting_read_is_in_the_table_and_every_row_is_read():
    assert mismatches(settings_read(), documented((ROOT / "README.md").read_text())) == (set(), set())


def test_the_table_lists_what_the_architecture_page_says_the_worker_reads():
    worker = {"PROGRESS_MAX_SAVES_PER_S", "LOG_MAX_LINES", "HORSE_MAX_JOBS", "HORSE_MAX_RSS_MIB"}
    assert worker <= documented((ROOT / "README.md").read_text())
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    assert all(f"`{name}`" in architecture for name in worker | {"HORSE_HARD_KILL_GRACE_S"})


def test_a_setting_read_but_missing_from_the_table_is_found(tmp_path):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "new.py").write_text(
        "import os\nLIMIT = int(os.environ.get('NEW_LIMIT', '3'))\nWHERE = os.environ['NEW_WHERE']\n"
        "os.environ['WRITTEN_ONLY'] = '1'\nNAMED = 'NEW_NAMED'\ndef f(environ=os.environ):\n"
        "    return environ.get(NAMED)\n"
    )
    (tmp_path / "Procfile").write_text("web: serve --port ${PORT:-5000} --x $NEW_FLAG\n")
    readme = (
        "# App\n\n## Configuration\n\n| variable | meaning |\n| --- | --- |\n"
        "| `PORT` | p |\n| `GHOST` | g |\n\n## More\n"
    )
    read = settings_read(tmp_path, web_settings={"SESSION_COOKIE_SAMESITE": "Lax"})
    assert read == {"NEW_LIMIT", "NEW_WHERE", "NEW_NAMED", "PORT", "NEW_FLAG", "SESSION_COOKIE_SAMESITE"}
    assert mismatches(read, documented(readme)) == (
        {"NEW_LIMIT", "NEW_WHERE", "NEW_NAMED", "NEW_FLAG"},
        {"GHOST"},
    )
