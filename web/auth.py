"""Who is calling: the browser's session identity and the same-origin check.

The session is Flask's signed cookie; it lists the jobs this browser started, so the page
redraws their rows after a reload and another browser sees only its own.
"""

from urllib.parse import urlsplit

from flask import request, session

SESSION_KEY = "job_ids"
GROUPS_KEY = "group_ids"
# Enough rows for a page, few enough ids (36 characters each) to keep the cookie far below 4 KB.
MAX_REMEMBERED = 20
# Browsers send Sec-Fetch-Site on every request; these values mean "not from another site".
_SAME_ORIGIN_FETCH_SITES = frozenset({"same-origin", "none"})


def remember(job_id: str) -> None:
    """Add a job to this browser's list, newest last, keeping the last MAX_REMEMBERED."""
    ids = [known for known in remembered() if known != job_id]
    session[SESSION_KEY] = [*ids, job_id][-MAX_REMEMBERED:]
    session.permanent = True


def remembered() -> list[str]:
    """The ids of the jobs this browser started, oldest first."""
    ids = session.get(SESSION_KEY)
    return [job_id for job_id in ids if isinstance(job_id, str)] if isinstance(ids, list) else []


def remember_group(group_id: str) -> None:
    """Add a group to this browser's list, newest last, keeping the last MAX_REMEMBERED."""
    ids = [known for known in remembered_groups() if known != group_id]
    session[GROUPS_KEY] = [*ids, group_id][-MAX_REMEMBERED:]
    session.permanent = True


def remembered_groups() -> list[str]:
    """The ids of the groups this browser started, oldest first."""
    ids = session.get(GROUPS_KEY)
    return [group_id for group_id in ids if isinstance(group_id, str)] if isinstance(ids, list) else []


def forget_all_but(job_ids: list[str]) -> None:
    """Keep only these jobs in this browser's list (the others have expired)."""
    session[SESSION_KEY] = list(job_ids)


def forget_groups_but(group_ids: list[str]) -> None:
    """Keep only these groups in this browser's list (the others have expired)."""
    session[GROUPS_KEY] = list(group_ids)


def changes_state() -> bool:
    """Whether the request can change state: any method but GET/HEAD/OPTIONS, or a route that takes POST.

    rq-dashboard's `/rq/requeue/<queue>` requeues on a plain GET too.
    """
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        return True
    rule = request.url_rule
    return rule is not None and "POST" in (rule.methods or ())


def is_same_origin() -> bool:
    """Whether the browser says the request comes from this site (clients sending neither header pass).

    `Origin` must name this host; `Sec-Fetch-Site`, when present, must be same-origin or none.
    Behind a proxy, the proxy must pass the original Host header.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in _SAME_ORIGIN_FETCH_SITES:
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()
