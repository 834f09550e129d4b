"""Artifacts in an S3 bucket (AWS, MinIO, Ceph): the store of distributed deployments.

A put returns its ArtifactRef only once the upload is verified, so the caller (the runner) records
an artifact only after it is really there: the object is read back with HEAD and its size, the
sha256 stored in its metadata and its ETag (the MD5 of the bytes, or of the parts' MD5s for a
multipart upload) must match what was sent; anything else raises. Large files go up in parts.
Reads check the bytes against the stored sha256, so an object changed behind the store's back is
reported instead of used.

Credentials come from the standard boto3 chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
profiles, instance roles) or from an explicit boto3 Session: what an Airflow connection resolves
to on the Airflow side (the library never imports Airflow). S3-compatible servers that reject
boto3's default CRC checksums take ``AWS_REQUEST_CHECKSUM_CALCULATION=when_required``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.utils import ChunksizeAdjuster

from textbook.store.base import ArtifactRef, ArtifactStore, MissingArtifact, check_key

if TYPE_CHECKING:
    from textbook.config import StoreSettings

MiB = 1024 * 1024
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_ETAG_NOT_MD5 = frozenset({"aws:kms", "aws:kms:dsse"})  # SSE-KMS objects carry an ETag that is no MD5


VERIFY_DELAYS = (0.2, 0.5, 1.0)  # seconds between looks at an upload that does not show its bytes yet


class S3StoreError(OSError):
    """An S3 request failed; the message names the endpoint, the bucket and the key."""


class ChecksumMismatch(S3StoreError):
    """An object's bytes are not the ones written: an unverified upload, or a changed object."""


@dataclass(frozen=True)
class _Digest:
    sha256: str
    size: int
    etags: frozenset[str]  # the ETags a correct upload can have: MD5 of the bytes, or of the parts' MD5s


def _digest(stream: BinaryIO, part_size: int) -> _Digest:
    sha, whole, parts, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), [], 0
    for block in iter(lambda: stream.read(part_size), b""):
        sha.update(block)
        whole.update(block)
        parts.append(hashlib.md5(block, usedforsecurity=False).digest())
        size += len(block)
    multipart = hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest() + f"-{len(parts)}"
    return _Digest(sha.hexdigest(), size, frozenset({whole.hexdigest(), multipart}))


def _prefix(root: str) -> str:
    prefix = root.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except ValueError:
            raise ValueError(f"store.root: invalid S3 key prefix {root!r}") from None
    return prefix


class S3Store(ArtifactStore):
    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str = "", region: str = "",
                 path_style: bool = False, multipart_threshold: int = 64 * MiB, multipart_chunksize: int = 16 * MiB,
                 url_expiry: int = 3600, page_size: int = 1000, session: boto3.session.Session | None = None,
                 client: Any = None) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"store.bucket: {bucket!r} is not an S3 bucket name")
        self.bucket, self.prefix = bucket, _prefix(prefix)
        self.endpoint_url = endpoint_url
        self.page_size = page_size
        self.url_expiry = url_expiry
        self.transfer = TransferConfig(multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize)
        if client is None:
            config = Config(s3={"addressing_style": "path" if path_style else "auto"}, signature_version="s3v4")
            client = (session or boto3.session.Session()).client(
                "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config)
        self.client = client
        self._bucket_seen = False

    @classmethod
    def from_settings(cls, settings: StoreSettings, session: boto3.session.Session | None = None) -> S3Store:
        if not settings.bucket:
            raise ValueError("store.bucket: required when store.kind is 's3'")
        for name in ("multipart_threshold_mb", "multipart_chunk_mb", "url_expiry_seconds"):
            if getattr(settings, name) < 1:
                raise ValueError(f"store.{name}: must be at least 1, got {getattr(settings, name)}")
        return cls(settings.bucket, settings.root, endpoint_url=settings.endpoint_url, region=settings.region,
                   path_style=settings.path_style, multipart_threshold=settings.multipart_threshold_mb * MiB,
                   multipart_chunksize=settings.multipart_chunk_mb * MiB, url_expiry=settings.url_expiry_seconds,
                   session=session)

    def at(self, bucket: str, prefix: str) -> S3Store:
        """Another place on the same service, with the same client and transfer settings."""
        return S3Store(bucket, prefix, endpoint_url=self.endpoint_url,
                       multipart_threshold=self.transfer.multipart_threshold,
                       multipart_chunksize=self.transfer.multipart_chunksize, url_expiry=self.url_expiry,
                       page_size=self.page_size, client=self.client)

    def __repr__(self) -> str:
        return f"S3Store({self.uri} at {self.where})"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def where(self) -> str:
        return self.endpoint_url or "AWS S3"

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _name(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}" if key else self.uri

    @contextmanager
    def _request(self, action: str, key: str = "") -> Iterator[None]:
        """Turn boto errors into MissingArtifact or an S3StoreError naming endpoint, bucket and key."""
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _MISSING_CODES and key:
                raise self._missing(key) from None
            if code == "NoSuchBucket":
                raise S3StoreError(f"{action} {self._name(key)}: bucket {self.bucket!r} does not exist "
                                   f"at {self.where}") from None
            raise S3StoreError(f"{action} {self._name(key)} at {self.where}: {code} "
                               f"{error.get('Message', '')}".rstrip()) from exc
        except (BotoCoreError, Boto3Error) as exc:  # connection refused, timeouts, no credentials, failed transfers
            raise S3StoreError(f"{action} {self._name(key)} at {self.where}: {exc}") from exc

    def _missing(self, key: str) -> Exception:
        """A 404 on an object: the key is absent, unless the whole bucket is (checked once)."""
        if not self._bucket_seen:
            try:
                self.client.head_bucket(Bucket=self.bucket)
                self._bucket_seen = True
            except ClientError as exc:  # other codes (403 without s3:ListBucket) leave the key the culprit
                if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchBucket"):
                    return S3StoreError(f"bucket {self.bucket!r} does not exist at {self.where} "
                                        f"(looking for {key!r})")
        return MissingArtifact(f"artifact {key!r} not found in {self.uri} at {self.where}")

    def _head(self, key: str) -> dict[str, Any]:
        with self._request("HEAD", key):
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))

    # -- writing --------------------------------------------------------------------------

    def _upload(self, key: str, stream: BinaryIO) -> ArtifactRef:
        size = stream.seek(0, io.SEEK_END)
        part_size = ChunksizeAdjuster().adjust_chunksize(self.transfer.multipart_chunksize, size)
        stream.seek(0)
        digest = _digest(stream, part_size)
        stream.seek(0)
        meta = {"sha256": digest.sha256}
        with self._request("upload", key):
            if size < self.transfer.multipart_threshold:
                md5 = next(e for e in digest.etags if "-" not in e)
                self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=stream, Metadata=meta,
                                       ContentMD5=base64.b64encode(bytes.fromhex(md5)).decode())
            else:
                self.client.upload_fileobj(stream, self.bucket, self._key(key), ExtraArgs={"Metadata": meta},
                                           Config=self.transfer)
        return self._verified(key, digest)

    def _verified(self, key: str, digest: _Digest) -> ArtifactRef:
        """HEAD the object until it shows the bytes sent. Some S3-compatible servers answer a HEAD
        right after a PUT with the object half-recorded (seen: size 0 with the right ETag), so a
        mismatch is looked at again, briefly, before the upload counts as failed."""
        for delay in VERIFY_DELAYS:
            problems = self._mismatch(key, digest)
            if not problems:
                return ArtifactRef(key, digest.sha256, digest.size)
            time.sleep(delay)
        problems = self._mismatch(key, digest)
        if problems:
            raise ChecksumMismatch(f"upload of {self._name(key)} at {self.where} not verified: {'; '.join(problems)}")
        return ArtifactRef(key, digest.sha256, digest.size)

    def _mismatch(self, key: str, digest: _Digest) -> list[str]:
        try:
            head = self._head(key)
        except MissingArtifact:
            return ["the object is not there after the upload"]
        problems = []
        if head.get("ContentLength") != digest.size:
            problems.append(f"size {head.get('ContentLength')} != {digest.size} sent")
        stored = head.get("Metadata", {}).get("sha256")
        if stored != digest.sha256:
            problems.append(f"sha256 metadata {stored} != {digest.sha256} sent")
        etag = str(head.get("ETag", "")).strip('"')
        if head.get("ServerSideEncryption") not in _ETAG_NOT_MD5 and not head.get("SSECustomerAlgorithm") \
                and etag not in digest.etags:
            problems.append(f"ETag {etag} is not the MD5 of the bytes sent")
        return problems

    def put_bytes(self, key: str, data: bytes) -> ArtifactRef:
        return self._upload(key, io.BytesIO(data))

    def put_file(self, key: str, path: Path) -> ArtifactRef:
        with open(path, "rb") as fh:
            return self._upload(key, fh)

    # -- reading --------------------------------------------------------------------------

    def _check_read(self, key: str, response: dict[str, Any], sha256: str) -> None:
        stored = response.get("Metadata", {}).get("sha256")
        if stored and stored != sha256:
            raise ChecksumMismatch(f"{self._name(key)} at {self.where}: bytes read hash to {sha256}, "
                                   f"the object's metadata says {stored}: it changed behind the store's back")

    def _stream(self, key: str, sink: Any) -> str:
        """Copy the object into ``sink`` (a writable, or None) and return its verified sha256."""
        sha = hashlib.sha256()
        with self._request("GET", key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            for chunk in response["Body"].iter_chunks(MiB):
                sha.update(chunk)
                if sink is not None:
                    sink.write(chunk)
        self._check_read(key, response, sha.hexdigest())
        return sha.hexdigest()

    def get_bytes(self, key: str) -> bytes:
        buf = io.BytesIO()
        self._stream(key, buf)
        return buf.getvalue()

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except MissingArtifact:
            return False
        return True

    def delete(self, key: str) -> None:
        with self._request("DELETE", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under the folder ``prefix`` ('' for all), as LocalStore lists them."""
        folder = prefix.strip("/")
        if folder:
            check_key(folder)
        start = len(self.prefix) + 1 if self.prefix else 0
        under = "/".join(p for p in (self.prefix, folder) if p)
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=under + "/" if under else "", PaginationConfig={"PageSize": self.page_size})
        with self._request("LIST", folder):
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"][start:]

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """The object downloaded to a temp file (with the key's suffix, which ffmpeg reads), removed after."""
        fd, name = tempfile.mkstemp(prefix="textbook-s3-", suffix=PurePosixPath(key).suffix)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                self._stream(key, out)
            yield path
        finally:
            path.unlink(missing_ok=True)

    def checksum(self, key: str) -> str:
        """The sha256 recorded at upload; computed from the bytes for an object written by others."""
        return self._head(key).get("Metadata", {}).get("sha256") or self._stream(key, None)

    def url(self, key: str) -> str:
        """A presigned GET URL, valid for ``url_expiry`` seconds."""
        with self._request("presign", key):
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=self.url_expiry)
