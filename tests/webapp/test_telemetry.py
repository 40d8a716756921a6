"""Telemetry: Azure Monitor only with a connection string; JSON log lines otherwise."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from webapp.telemetry import JsonFormatter

REPO_ROOT = Path(__file__).resolve().parents[2]
# Builds the app in a fresh interpreter (telemetry is set up once per process) and reports
# what OpenTelemetry looks like afterwards.
PROBE = """
import json, sys
from opentelemetry import trace
from webapp import create_app
config = json.loads(sys.argv[1])
app = create_app(config)
print(json.dumps({
    "tracer_provider": type(trace.get_tracer_provider()).__name__,
    "flask_instrumented": getattr(app, "_is_instrumented_by_opentelemetry", False),
}))
"""
SETTINGS = {
    "SECRET_KEY": "a-very-long-secret-key-for-tests",
    "DATABASE_URL": "postgresql://app:pw@127.0.0.1:9/reviews",
    "AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
}
# Syntactically valid, pointing nowhere: nothing leaves the machine.
FAKE_APPINSIGHTS = (
    "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
    "IngestionEndpoint=http://127.0.0.1:9/;LiveEndpoint=http://127.0.0.1:9/"
)


def start_probe(config: dict) -> subprocess.Popen:
    env = {**os.environ, "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
           "OTEL_TRACES_SAMPLER": "always_off"}
    return subprocess.Popen(
        [sys.executable, "-c", PROBE, json.dumps(config)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def probe_result(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.slow  # two interpreters importing OpenTelemetry
def test_azure_monitor_is_enabled_only_with_a_connection_string():
    # Both interpreters start together: most of the time is importing OpenTelemetry.
    with_monitor = start_probe(
        {**SETTINGS, "APPLICATIONINSIGHTS_CONNECTION_STRING": FAKE_APPINSIGHTS}
    )
    without = start_probe(SETTINGS)

    assert probe_result(with_monitor) == {
        "tracer_provider": "TracerProvider",  # the SDK's, exporting to Azure Monitor
        "flask_instrumented": True,
    }
    assert probe_result(without) == {
        "tracer_provider": "ProxyTracerProvider",  # OpenTelemetry's no-op default
        "flask_instrumented": False,
    }


def test_log_lines_are_json_with_the_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("webapp.reviews").makeRecord(
            "webapp.reviews", logging.ERROR, __file__, 1, "saving %s failed", ("review",),
            sys.exc_info(),
        )

    entry = json.loads(JsonFormatter().format(record))

    assert entry["level"] == "ERROR"
    assert entry["logger"] == "webapp.reviews"
    assert entry["message"] == "saving review failed"
    assert "ValueError: boom" in entry["exception"]
    assert entry["time"]
