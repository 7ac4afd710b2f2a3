"""The tutorial's stack, rebuilt for the benchmark: Flask + Celery + Redis, polled every 2 s.

Laid out as miguelgrinberg/flask-celery-example's `app.py`: one module holds the Flask app,
the Celery app and the task; `POST /longtask` answers 202 with `Location`; `GET /status/<id>`
folds the task's state into {state, current, total, status[, result]}; the task reports with
`update_state(state="PROGRESS", meta=...)` before each one-second step. Run as the benchmark
runs it: gunicorn with 2 sync workers and one prefork Celery worker.

Differences, each for the benchmark: the Redis URL comes from REDIS_URL (the tutorial hard-codes
localhost); the e-mail view is left out; `long_task` takes optional `steps` and `step_seconds`
(from an optional JSON body, as our `/longtask` does), defaulting to the tutorial's random
10 to 50 steps of one second; `noop` is a task for the short-job throughput figure.
"""

import os
import random
import time

from celery import Celery
from flask import Flask, jsonify, request, url_for

app = Flask(__name__)
app.config["SECRET_KEY"] = "top-secret!"
REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")

celery = Celery(app.name, broker=REDIS_URL, backend=REDIS_URL)


@celery.task(bind=True)
def long_task(self, steps=None, step_seconds=1.0):
    """Background task that runs a long function with progress reports."""
    verbs = ["Starting up", "Booting", "Repairing", "Loading", "Checking"]
    adjectives = ["master", "radiant", "silent", "harmonic", "fast"]
    nouns = ["solar array", "particle reshaper", "cosmic ray", "orbiter", "bit"]
    message = ""
    total = steps if steps is not None else random.randint(10, 50)
    for i in range(total):
        if not message or random.random() < 0.25:
            message = f"{random.choice(verbs)} {random.choice(adjectives)} {random.choice(nouns)}..."
        self.update_state(state="PROGRESS", meta={"current": i, "total": total, "status": message})
        time.sleep(step_seconds)
    return {"current": 100, "total": 100, "status": "Task completed!", "result": 42}


@celery.task
def noop():
    """A task that does nothing but say when it ran (short-job throughput)."""
    return time.time()


@app.route("/longtask", methods=["POST"])
def longtask():
    body = request.get_json(silent=True) or {}
    sizing = {key: body[key] for key in ("steps", "step_seconds") if key in body}
    task = long_task.apply_async(kwargs=sizing)
    return jsonify({}), 202, {"Location": url_for("taskstatus", task_id=task.id)}


@app.route("/status/<task_id>")
def taskstatus(task_id):
    task = long_task.AsyncResult(task_id)
    if task.state == "PENDING":
        response = {"state": task.state, "current": 0, "total": 1, "status": "Pending..."}
    elif task.state != "FAILURE":
        response = {
            "state": task.state,
            "current": task.info.get("current", 0),
            "total": task.info.get("total", 1),
            "status": task.info.get("status", ""),
        }
        if "result" in task.info:
            response["result"] = task.info["result"]
    else:
        # something went wrong in the background job
        response = {"state": task.state, "current": 1, "total": 1, "status": str(task.info)}
    return jsonify(response)
