"""The process tree from /proc: who is whose child, for the tests and the bench."""

from pathlib import Path


def children() -> dict[int, list[int]]:
    """Every living (not zombie) process's children, by parent pid."""
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            except (OSError, ValueError):
                continue
            if state != "Z":
                found.setdefault(int(parent), []).append(int(entry.name))
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
    leaders = []
    for child in children().get(pid, []):
        try:
            stat = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[2]) == child:
            leaders.append(child)
    return leaders
