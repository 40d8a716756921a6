"""Unguessable tokens without a system call each (webapp/tokens.py)."""

from __future__ import annotations

import os
import re
import uuid

import pytest

from webapp import tokens


@pytest.fixture
def no_urandom(monkeypatch) -> None:
    """os.urandom fails from now on: anything still calling it per token shows."""

    def refuse(_size):
        raise AssertionError("os.urandom called")

    monkeypatch.setattr(os, "urandom", refuse)


def test_tokens_come_without_a_system_call_and_never_repeat(no_urandom):
    drawn = [tokens.uuid4() for _ in range(10_000)]
    assert all(token.version == 4 for token in drawn)
    assert len(set(drawn)) == len(drawn)


def test_submission_tokens_are_version_4_uuids(no_urandom):
    token = tokens.uuid4()
    assert token.version == 4
    assert token.variant == uuid.RFC_4122
    assert token != tokens.uuid4()


def test_a_forked_worker_draws_its_own_key():
    # gunicorn forks its workers after the app is imported: each must hand out its own tokens.
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next token, then leave without running pytest's exit
        os.close(reading)
        os.write(writing, tokens.uuid4().bytes)
        os._exit(0)
    os.close(writing)
    child_token = uuid.UUID(bytes=os.read(reading, 16))
    os.close(reading)
    os.waitpid(pid, 0)
    assert child_token.version == 4
    assert child_token != tokens.uuid4()  # the parent's next one, from the same counter


def test_the_site_issues_its_tokens_without_a_system_call(app, client, add_restaurant,
                                                          no_urandom):
    page = client.get(f"/restaurants/{add_restaurant()}")
    assert page.status_code == 200
    assert re.search(r'name="submission_token" type="hidden" value="[0-9a-f-]{36}"', page.text)
