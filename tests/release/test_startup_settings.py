"""How startup.py sizes and configures gunicorn from the App Service environment."""

from __future__ import annotations

import pytest

from release.startup import (
    ROOT,
    VENDOR,
    StartupError,
    cgroup_cpu_quota,
    default_workers,
    environment_with_package_paths,
    gunicorn_command,
)


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_defaults_follow_the_instance_size():
    command = gunicorn_command({}, cpus=1)  # B1: one core
    assert command[1:4] == ["-S", "-m", "gunicorn"]  # the image's site-packages stay out
    assert command[-1] == "webapp:create_app()"
    assert option(command, "--bind") == "0.0.0.0:8000"
    assert option(command, "--workers") == "3"
    assert option(command, "--threads") == "4"
    assert option(command, "--worker-class") == "gthread"
    assert option(command, "--access-logfile") == "-"
    assert int(option(command, "--graceful-timeout")) > 0
    assert int(option(command, "--timeout")) >= 230  # not below the front end's request limit
    assert "--no-control-socket" in command  # $HOME is the share all instances mount

    assert option(gunicorn_command({}, cpus=2), "--workers") == "5"  # P1v3 / I1v2
    assert default_workers(64) == 12  # a large host does not fork past the plan's memory


def test_port_and_concurrency_come_from_the_environment():
    env = {"PORT": "8181", "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "8"}
    command = gunicorn_command(env, cpus=4)
    assert option(command, "--bind") == "0.0.0.0:8181"
    assert option(command, "--workers") == "2"
    assert option(command, "--threads") == "8"


@pytest.mark.parametrize(
    ("name", "value"),
    [("PORT", "http"), ("PORT", "70000"), ("WEB_CONCURRENCY", "0"), ("GUNICORN_THREADS", "-1")],
)
def test_bad_values_are_named(name, value):
    with pytest.raises(StartupError, match=name):
        gunicorn_command({name: value}, cpus=1)


def test_package_paths_come_first_and_keep_what_was_there():
    env = environment_with_package_paths({"PYTHONPATH": "/opt/image/lib", "OTHER": "x"})
    assert env["PYTHONPATH"].split(":") == [str(ROOT), str(VENDOR), "/opt/image/lib"]
    assert env["OTHER"] == "x"
    assert environment_with_package_paths({})["PYTHONPATH"].split(":") == [str(ROOT), str(VENDOR)]


@pytest.mark.parametrize(
    ("content", "cores"),
    [("max 100000\n", None), ("200000 100000\n", 2), ("150000 100000\n", 2), ("garbage", None)],
)
def test_cgroup_quota_in_whole_cores(tmp_path, content, cores):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(content)
    assert cgroup_cpu_quota(cpu_max) == cores
    assert cgroup_cpu_quota(tmp_path / "missing") is None
