"""Blob storage for review photos: one client per app, content-addressed immutable names.

A photo's blob name is the SHA-256 of its bytes plus the extension of its validated format, so
a name always means the same bytes: the site can serve it with a long, immutable cache lifetime
and use the hash as its ETag.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings
from flask import current_app

from .config import StorageSettings

IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
PHOTO_NAME = re.compile(r"^(?P<digest>[0-9a-f]{64})\.(?P<extension>jpg|png|webp)$")

CLIENT_DEFAULTS = {
    # A storage outage should become a 503 within seconds, not after a long retry ladder.
    "STORAGE_RETRY_TOTAL": 3,
    "STORAGE_CONNECTION_TIMEOUT_SECONDS": 5,
    "STORAGE_READ_TIMEOUT_SECONDS": 30,
}
# Above this size downloads arrive in chunks of this size instead of one buffer.
DOWNLOAD_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class StoredPhoto:
    name: str
    # False when identical bytes were already stored (by another review): such a blob is
    # shared and must not be deleted when this review fails to save.
    created: bool


@dataclass(frozen=True)
class PhotoDownload:
    content_type: str
    size: int
    chunks: Iterator[bytes]


def photo_name_for(data: bytes, extension: str) -> str:
    return f"{hashlib.sha256(data).hexdigest()}.{extension}"


def current_photo_store() -> PhotoStore:
    return current_app.extensions["photo_store"]


def parse_photo_name(name: str) -> re.Match[str] | None:
    return PHOTO_NAME.match(name)


class PhotoStore:
    def __init__(self, service: BlobServiceClient, container_name: str) -> None:
        self._service = service
        self._container: ContainerClient = service.get_container_client(container_name)
        self._container_ready = False
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: StorageSettings,
        credential: Callable[[], TokenCredential],
        config,
    ) -> PhotoStore:
        options = {key: config.get(key, default) for key, default in CLIENT_DEFAULTS.items()}
        client_options = {
            "retry_total": options["STORAGE_RETRY_TOTAL"],
            "connection_timeout": options["STORAGE_CONNECTION_TIMEOUT_SECONDS"],
            "read_timeout": options["STORAGE_READ_TIMEOUT_SECONDS"],
            "max_single_get_size": DOWNLOAD_CHUNK_BYTES,
            "max_chunk_get_size": DOWNLOAD_CHUNK_BYTES,
        }
        if settings.uses_credential:
            service = BlobServiceClient(
                settings.account_url, credential=credential(), **client_options
            )
        else:
            service = BlobServiceClient.from_connection_string(
                settings.connection_string, **client_options
            )
        return cls(service, settings.container)

    def upload(self, data: bytes, extension: str) -> StoredPhoto:
        self._ensure_container()
        name = photo_name_for(data, extension)
        settings = ContentSettings(
            content_type=CONTENT_TYPES[extension], cache_control=IMMUTABLE_CACHE_CONTROL
        )
        try:
            self._container.upload_blob(name, data, overwrite=False, content_settings=settings)
        except ResourceExistsError:
            return StoredPhoto(name=name, created=False)
        return StoredPhoto(name=name, created=True)

    def download(self, name: str) -> PhotoDownload:
        """Start a streaming download; raises ResourceNotFoundError for an unknown name."""
        extension = name.rsplit(".", 1)[-1]
        downloader = self._container.download_blob(name)
        return PhotoDownload(
            content_type=CONTENT_TYPES[extension], size=downloader.size, chunks=downloader.chunks()
        )

    def delete(self, name: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):  # already gone is what we want
            self._container.delete_blob(name)

    def close(self) -> None:
        """Close the pooled HTTP connections (the app normally lives as long as the process)."""
        self._service.close()

    def check(self) -> None:
        """Raise unless the container is reachable, creating it if missing (readiness view)."""
        if not self._container.exists():
            self._create_container()

    def _ensure_container(self) -> None:
        if self._container_ready:
            return
        with self._lock:
            # exists() first: an identity allowed to write blobs may not be allowed to create
            # containers, and in Azure the infrastructure creates this one.
            if not self._container.exists():
                self._create_container()
            self._container_ready = True

    def _create_container(self) -> None:
        with contextlib.suppress(ResourceExistsError):  # another instance was quicker
            self._container.create_container()
