"""The process tree from /proc: who is whose child, for the tests and the bench."""

from pathlib import Path


def _stat(pid: str | int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, parent, group...); None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def children() -> dict[int, list[int]]:
    """Every living (not zombie) process's children, by parent pid."""
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(entry.name)) and stat[0] != "Z":
            found.setdefault(int(stat[1]), []).append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    """The children of `pid`, their children, and so on (`pid` itself left out)."""
    tree = children()
    found, todo = [], list(tree.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def group_leaders_under(pid: int) -> list[int]:
    """Children of `pid` that lead a process group of their own (an RQ work horse calls setpgrp)."""
    return [child for child in children().get(pid, []) if (stat := _stat(child)) and int(stat[2]) == child]
