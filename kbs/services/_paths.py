"""Resource paths (`repo/type/tag`, each segment `[A-Za-z0-9_-][A-Za-z0-9_.-]*`) and policy scopes over them.

>>> split_resource_path("default/key/1")
('default', 'key', '1')
>>> policy_scope_id("default/key")
'resource:default/key'
"""

from __future__ import annotations

from ..errors import KbsError
from ..protocol import RESOURCE_SEGMENT

__all__ = ["policy_scope_id", "resource_path", "split_resource_path"]


def resource_path(repo: str, type_: str, tag: str) -> str:
    for name, segment in (("repository", repo), ("type", type_), ("tag", tag)):
        if not RESOURCE_SEGMENT.fullmatch(segment):
            raise KbsError.invalid_request(f"resource {name} {segment!r} does not match [A-Za-z0-9_-][A-Za-z0-9_.-]*")
    return f"{repo}/{type_}/{tag}"


def split_resource_path(path: str) -> tuple[str, str, str]:
    parts = path.split("/")
    if len(parts) != 3:
        raise KbsError.invalid_request(f"resource path has {len(parts)} segments, expected repo/type/tag")
    resource_path(*parts)
    return parts[0], parts[1], parts[2]


def policy_scope_id(scope: str | None) -> str:
    """The id a resource policy is stored under: `resource` (every path), or `resource:<prefix>` for a scope of
    repo, repo/type or repo/type/tag."""
    if not scope:
        return "resource"
    parts = scope.strip("/").split("/")
    if len(parts) > 3:
        raise KbsError.invalid_request("policy scope is repo, repo/type or repo/type/tag")
    resource_path(*(parts + ["x"] * (3 - len(parts))))
    return f"resource:{'/'.join(parts)}"
