"""Logs and telemetry: Azure Monitor when configured, JSON lines on stderr always.

App Service's log stream and `az webapp log tail` show stderr; JSON lines stay searchable there
and in any log pipeline.
"""

from __future__ import annotations

import json
import logging
import threading

_lock = threading.Lock()
_configured = False


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the traceback if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_telemetry(appinsights_connection_string: str | None) -> bool:
    """Set up logging (and Azure Monitor if a connection string is given) once per process.

    Must run before the Flask app object is created: Azure Monitor instruments Flask by
    replacing the flask.Flask class. Returns True when Azure Monitor was enabled by this call.
    """
    global _configured
    with _lock:
        if _configured:
            return False
        _configured = True
        _configure_logging()
        if appinsights_connection_string:
            enable_azure_monitor(appinsights_connection_string)
            return True
        return False


def _configure_logging() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    # Like basicConfig, a no-op when the host (gunicorn with a log config, pytest) already
    # set up the root logger.
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("webapp").setLevel(logging.INFO)
    # Every HTTP request to Blob Storage is logged at INFO by azure-core; keep the noise down.
    logging.getLogger("azure").setLevel(logging.WARNING)


def enable_azure_monitor(connection_string: str) -> None:
    # Imported here: OpenTelemetry is slow to import and unused without a connection string.
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(connection_string=connection_string, logger_name="webapp")
