"""A prepared, seeded site for the devtools modules that load one (bench, seeding)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools import seeding, site_setup


@pytest.fixture(scope="module")
def site_name(request: pytest.FixtureRequest) -> str:
    """The requesting module's SITE_NAME: its database and role, dropped after the module."""
    return request.module.SITE_NAME


@pytest.fixture(scope="module")
def site_environment(postgres, azurite, site_name: str) -> Iterator[dict[str, str]]:
    environment = site_setup.prepare_site(postgres, azurite, site_name)
    yield environment
    postgres.drop_database(site_name)
    postgres.execute(f'DROP ROLE "{site_name}"')


@pytest.fixture(scope="module")
def seeded(postgres, site_environment, site_name: str) -> list[str]:
    """Two photos, and three restaurants with two reviews each; returns the photos' names."""
    photo_names = seeding.upload_photos(site_environment, seeding.sample_photos(2))
    seeding.seed(postgres, site_name, photo_names, restaurants=3, reviews_per_restaurant=2)
    return photo_names
