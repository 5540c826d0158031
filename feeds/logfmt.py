"""The one spelling of a structured log line: logfmt's key=value pairs."""

from __future__ import annotations


def logfmt(**fields: object) -> str:
    """One structured log line: key=value pairs, values quoted when they need it."""
    parts = []
    for key, value in fields.items():
        text = str(value)
        if not text or any(c in text for c in ' "=\n'):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)
