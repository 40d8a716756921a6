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
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings, LinearRetry
from flask import current_app

from . import budget
from .config import StorageClientSettings, StorageSettings

IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
PHOTO_NAME = re.compile(r"^(?P<digest>[0-9a-f]{64})\.(?P<extension>jpg|png|webp)$")

# The SDK's default backoff waits 15 s (then 18, 24) before a retry: the site froze for that
# long during a short outage. A fixed short pause with a little jitter instead.
RETRY_BACKOFF_SECONDS = 0.2
RETRY_JITTER_SECONDS = 0.1
# An attempt given less time than this would fail on a healthy service too: give up instead.
MIN_ATTEMPT_SECONDS = 0.1
# An attempt lasts a little longer than its timeouts (sending the request, the SDK's own work,
# a busy CPU): each is given this much less than its share of the time left.
ATTEMPT_OVERHEAD_SECONDS = 0.15
# Threads that run a request's storage calls so it can stop waiting at its deadline whatever
# the SDK does inside (the download's own body-read retries sleep a second each). A call left
# behind still ends by its own timeouts; a photo it uploads late is swept (webapp/sweep.py).
CALL_THREADS = 32
# Above this size downloads arrive in chunks of this size instead of one buffer.
DOWNLOAD_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class StoredPhoto:
    name: str
    # False when identical bytes were already stored (by another review): such a blob is
    # shared and must not be deleted when this review fails to save.
    created: bool
    # The blob's ETag after this upload (or touch): a cleanup deletes the blob only while it is
    # still this version, never after a concurrent review reused (touched) it.
    etag: str | None = None


@dataclass(frozen=True)
class StoredBlob:
    name: str
    last_modified: datetime
    etag: str


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
    def __init__(self, service: BlobServiceClient, container_name: str, retries: int = 0,
                 connection_timeout: float = 2, read_timeout: float = 3) -> None:
        self._service = service
        self._container: ContainerClient = service.get_container_client(container_name)
        self._container_ready = False
        self._lock = threading.Lock()
        self._retries = retries
        self._connection_timeout = connection_timeout
        self._read_timeout = read_timeout
        self._calls = ThreadPoolExecutor(CALL_THREADS, thread_name_prefix="blob-storage")

    @classmethod
    def from_settings(
        cls,
        settings: StorageSettings,
        client: StorageClientSettings,
        credential: Callable[[], TokenCredential],
    ) -> PhotoStore:
        retries = client.retry_total
        client_options = {
            "retry_policy": LinearRetry(
                backoff=RETRY_BACKOFF_SECONDS,
                random_jitter_range=RETRY_JITTER_SECONDS,
                retry_total=retries,
            ),
            "connection_timeout": client.connection_timeout_seconds,
            "read_timeout": client.read_timeout_seconds,
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
        return cls(
            service,
            settings.container,
            retries=retries,
            connection_timeout=client.connection_timeout_seconds,
            read_timeout=client.read_timeout_seconds,
        )

    def upload(self, data: bytes, extension: str) -> StoredPhoto:
        """Store the photo; identical bytes already stored are reused (and marked as in use).

        Reusing a blob touches it first, which changes its ETag and modification time: the
        orphan sweep (webapp/sweep.py) only deletes a blob that is old and unchanged since it
        listed it, so it cannot remove one a review is about to refer to. If the sweep removed
        it just before, the touch finds nothing and the photo is uploaded again.
        """
        return self._within_budget(self._upload, data, extension)

    def _upload(self, data: bytes, extension: str, options: dict) -> StoredPhoto:
        self._ensure_container(options)
        name = photo_name_for(data, extension)
        settings = ContentSettings(
            content_type=CONTENT_TYPES[extension], cache_control=IMMUTABLE_CACHE_CONTROL
        )
        blob = self._container.get_blob_client(name)
        for _attempt in range(2):
            try:
                # The blob client's upload answers with the new ETag (the container's does not).
                uploaded = blob.upload_blob(
                    data, overwrite=False, content_settings=settings, **options
                )
            except ResourceExistsError:
                try:
                    touched = blob.set_blob_metadata(
                        {"reused": "true"}, **options
                    )
                except ResourceNotFoundError:
                    continue  # swept between the two calls: upload it again
                return StoredPhoto(name=name, created=False, etag=touched.get("etag"))
            return StoredPhoto(name=name, created=True, etag=uploaded.get("etag"))
        raise ResourceNotFoundError(f"photo blob {name} vanished while it was being stored")

    def download(self, name: str) -> PhotoDownload:
        """Start a streaming download; raises ResourceNotFoundError for an unknown name."""
        return self._within_budget(self._download, name)

    def _download(self, name: str, options: dict) -> PhotoDownload:
        extension = name.rsplit(".", 1)[-1]
        downloader = self._container.download_blob(name, **options)
        return PhotoDownload(
            content_type=CONTENT_TYPES[extension], size=downloader.size, chunks=downloader.chunks()
        )

    def delete(self, photo: StoredPhoto) -> None:
        """Delete the blob unless it changed since `photo` was stored (a concurrent review
        reused it: its touch changed the ETag); with no ETag known, delete it whatever it is."""
        self._within_budget(self._delete, photo)

    def _delete(self, photo: StoredPhoto, options: dict) -> None:
        if photo.etag is not None:
            options = {**options, "etag": photo.etag,
                       "match_condition": MatchConditions.IfNotModified}
        # Already gone is what we want; changed means another review is using it now.
        with contextlib.suppress(ResourceNotFoundError, ResourceModifiedError):
            self._container.delete_blob(photo.name, **options)

    # The two below serve the orphan sweep, background work outside any request budget.

    def blobs(self) -> Iterator[StoredBlob]:
        """Every photo blob with its modification time and ETag."""
        for blob in self._container.list_blobs():
            yield StoredBlob(name=blob.name, last_modified=blob.last_modified, etag=blob.etag)

    def delete_if_unchanged(self, blob: StoredBlob) -> bool:
        """Delete the blob unless it changed (was reused) since listed; True if deleted."""
        try:
            self._container.delete_blob(
                blob.name, etag=blob.etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    def close(self) -> None:
        """Close the pooled HTTP connections (the app normally lives as long as the process)."""
        self._calls.shutdown(wait=False)
        self._service.close()

    def check(self) -> None:
        """Raise unless the container is reachable, creating it if missing (readiness view)."""
        self._within_budget(self._check)

    def _check(self, options: dict) -> None:
        if not self._container.exists(**options):
            self._create_container(options)

    def _within_budget(self, call, *args):
        """Run `call(*args, options=...)`, answering by the request's deadline.

        The call runs on a storage thread while the request waits at most the time left;
        outside a request it runs here with the client's own settings.
        """
        left = budget.remaining("Blob Storage")
        if left is None:
            return call(*args, options={})
        deadline = time.monotonic() + left
        future = self._calls.submit(self._call_by, deadline, call, *args)
        done, _ = wait([future], timeout=left)
        if not done:
            # Still queued behind busy threads: it must never run after the visitor was told
            # it failed (a late delete or upload would surprise whoever acted next).
            future.cancel()
            raise budget.DependencyTimeout("Blob Storage")
        return future.result()

    def _call_by(self, deadline: float, call, *args):
        """Run `call` on a storage thread with timeouts sized to what is left of `deadline`;
        a call that starts after its deadline (it waited for a thread) is not made at all."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise budget.DependencyTimeout("Blob Storage")
        return call(*args, options=self._call_options(left))

    def _call_options(self, left: float) -> dict:
        """Per-call timeouts and retries that fit in `left` seconds.

        The SDK applies connection_timeout and read_timeout to each attempt; with the backoff
        between attempts, the whole call ends before the deadline.
        """
        retries = self._retries
        pause = RETRY_BACKOFF_SECONDS + RETRY_JITTER_SECONDS
        per_attempt = (left - retries * pause) / (retries + 1) - ATTEMPT_OVERHEAD_SECONDS
        if per_attempt < MIN_ATTEMPT_SECONDS:
            retries, per_attempt = 0, left - ATTEMPT_OVERHEAD_SECONDS
        if per_attempt < MIN_ATTEMPT_SECONDS:
            raise budget.DependencyTimeout("Blob Storage")
        return {
            "retry_total": retries,
            "connection_timeout": min(self._connection_timeout, per_attempt),
            "read_timeout": min(self._read_timeout, per_attempt),
        }

    def _ensure_container(self, options: dict) -> None:
        if self._container_ready:
            return
        with self._lock:
            # exists() first: an identity allowed to write blobs may not be allowed to create
            # containers, and in Azure the infrastructure creates this one.
            if not self._container.exists(**options):
                self._create_container(options)
            self._container_ready = True

    def _create_container(self, options: dict) -> None:
        with contextlib.suppress(ResourceExistsError):  # another instance was quicker
            self._container.create_container(**options)
