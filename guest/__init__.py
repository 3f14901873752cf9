"""The guest's image side: decrypt encrypted OCI images and unpack them into a root filesystem."""

__all__: list[str] = []
