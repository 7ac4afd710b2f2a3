"""The tutorial's demo job: a long count with a changing status message, logged at every step."""

import random
import time

from jobs.progress import report

VERBS = ["Starting up", "Booting", "Repairing", "Loading", "Checking"]
ADJECTIVES = ["master", "radiant", "silent", "harmonic", "fast"]
NOUNS = ["solar array", "particle reshaper", "cosmic ray", "orbiter", "bit"]
# How many steps the demo takes when the caller gives none: a random number in this range.
RANDOM_STEPS = (10, 50)


def long_task(steps: int | None = None, step_seconds: float = 1.0) -> dict:
    """Count `steps` steps (random 10 to 50) of `step_seconds` each, reporting and logging each step as
    it begins, as the tutorial's task does; the result says 100%."""
    total = steps if steps is not None else random.randint(*RANDOM_STEPS)
    message = _random_message()
    for done in range(total):
        if done and random.random() < 0.25:
            message = _random_message()
        report(done, total, message, log=True)
        time.sleep(step_seconds)
    return {"current": 100, "total": 100, "status": "Task completed!", "result": 42}


def _random_message() -> str:
    return f"{random.choice(VERBS)} {random.choice(ADJECTIVES)} {random.choice(NOUNS)}..."
