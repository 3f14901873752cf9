"""KBS resource names: `kbs:///REPO/TYPE/TAG`, three path segments each [A-Za-z0-9_-][A-Za-z0-9_.-]*.

trustee's resource URI (its `ResourceUri`): the scheme `kbs`, an optional broker address (given to the
client separately, so ignored here) and exactly three segments. The segment pattern forbids `.`/`..` and hidden
names, so a resource path can never climb out of its repository.
"""

from __future__ import annotations

import re

from ._errors import ProtocolError

__all__ = ["RESOURCE_SEGMENT", "parse_resource_uri"]

RESOURCE_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
_SCHEME = "kbs://"


def parse_resource_uri(uri: str) -> tuple[str, str, str]:
    """`kbs:///repo/type/tag` (or `kbs://host/repo/type/tag`, or bare `repo/type/tag`) -> (repo, type, tag).

    ProtocolError (a ValueError) unless it is exactly three valid segments.
    """
    path = uri
    if uri.startswith(_SCHEME):
        # kbs://host/repo/type/tag: the host is the broker's address, given separately; kbs:/// has none.
        path = uri.removeprefix(_SCHEME).split("/", 1)[-1]
    parts = path.split("/")
    if len(parts) != 3 or not all(RESOURCE_SEGMENT.fullmatch(p) for p in parts):
        raise ProtocolError(
            "resource", f"{uri!r} is not kbs:///REPO/TYPE/TAG with segments [A-Za-z0-9_-][A-Za-z0-9_.-]*"
        )
    return parts[0], parts[1], parts[2]
