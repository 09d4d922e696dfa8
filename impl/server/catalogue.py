"""The image catalogue: read-only base images in one directory, each with a name and an identity.

An image is a raw disk image: a regular file named `NAME.img` (or `NAME.raw`)
whose size is a whole number of 512-byte sectors. Its identity is the SHA-256
of its content, computed once and remembered in the state directory keyed by
(size, modification time, inode), so a changed file gets a new identity.
"""

import hashlib
import json
import os
from dataclasses import dataclass

from spec.aoe.constants import SECTOR_BYTES

IMAGE_SUFFIXES = (".img", ".raw")
IDENTITY_CACHE = "identities.json"
HASH_CHUNK_BYTES = 1 << 20


class CatalogueError(Exception):
    """An image or image directory that cannot be served; the message names the file and the reason."""


@dataclass(frozen=True)
class Image:
    name: str
    path: str
    sectors: int
    identity: str  # hex SHA-256 of the content

    def describe(self) -> dict:
        return {"name": self.name, "path": self.path, "sectors": self.sectors, "bytes": self.sectors * SECTOR_BYTES, "identity": self.identity}


def image_name(filename: str) -> str | None:
    for suffix in IMAGE_SUFFIXES:
        if filename.endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)]
    return None


def content_identity(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class Catalogue:
    """Every image of one directory, by name."""

    def __init__(self, directory: str, state_directory: str):
        self.directory = directory
        self.cache_path = os.path.join(state_directory, IDENTITY_CACHE)
        self.images: dict[str, Image] = {}
        self.problems: dict[str, str] = {}
        self.reload()

    def reload(self) -> None:
        """Read the directory again. Given an image file instead, its directory is the catalogue and the
        file is in it whatever its name. Unusable files are left out and named in `problems`."""
        cache = self._load_cache()
        images, problems = {}, {}
        if os.path.isfile(self.directory):
            filename = os.path.basename(self.directory)
            candidates = {image_name(filename) or filename: self.directory}
            folder = os.path.dirname(os.path.abspath(self.directory))
        elif os.path.isdir(self.directory):
            candidates, folder = {}, self.directory
        else:
            raise CatalogueError(f"{self.directory}: no such image directory or image file")
        for filename in sorted(os.listdir(folder)):
            name = image_name(filename)
            if name is not None and name not in candidates and os.path.isfile(os.path.join(folder, filename)):
                candidates[name] = os.path.join(folder, filename)
        for name, path in candidates.items():
            try:
                images[name] = load_image(name, path, cache)
            except CatalogueError as e:
                problems[name] = str(e)
        self.images, self.problems = images, problems
        self._save_cache(cache)

    def image_directory(self) -> str:
        """Where new images (commits) are written."""
        return self.directory if os.path.isdir(self.directory) else os.path.dirname(os.path.abspath(self.directory))

    def get(self, name: str) -> Image:
        try:
            return self.images[name]
        except KeyError:
            known = ", ".join(self.images) or "none"
            why = f": {self.problems[name]}" if name in self.problems else f" (images: {known})"
            raise CatalogueError(f"no usable image named {name!r} in {self.directory}{why}") from None

    def _load_cache(self) -> dict:
        try:
            with open(self.cache_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _save_cache(self, cache: dict) -> None:
        temporary = self.cache_path + ".tmp"
        with open(temporary, "w") as f:
            json.dump(cache, f, indent=1)
        os.replace(temporary, self.cache_path)


def load_image(name: str, path: str, cache: dict) -> Image:
    """One image file, checked; its identity from the cache when the file has not changed."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise CatalogueError(f"{path}: {e.strerror}") from None
    if st.st_size == 0 or st.st_size % SECTOR_BYTES:
        raise CatalogueError(f"{path}: size {st.st_size} is not a positive multiple of {SECTOR_BYTES} bytes")
    if not os.access(path, os.R_OK):
        raise CatalogueError(f"{path}: not readable")
    key = f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
    identity = cache.get(key) or content_identity(path)
    cache[key] = identity
    return Image(name, path, st.st_size // SECTOR_BYTES, identity)
