"""The app's JSON answers, written by the event stream's encoder (`jobs.channel.encode`).

So `/status` and the stream say the same thing, and a result JSON cannot hold (a set, bytes,
NaN) becomes text, never a 500. Flask's `jsonify`, dict returns and the `tojson` filter all go
through `app.json`, which create_app sets to this provider.
"""

from typing import Any

from flask.json.provider import DefaultJSONProvider

from jobs.channel import encode


class PayloadJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, dumping with `jobs.channel.encode`."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """JSON text of `obj`, odd values as text."""
        kwargs.pop("default", None)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        return encode(obj, **kwargs)
