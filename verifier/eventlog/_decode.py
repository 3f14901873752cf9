"""Best-effort decoding of event data into readable fields (variable names, strings, image addresses).

Replay depends only on digests, so the data of an event is never trusted for anything here: a layout that
does not fit yields no details (the raw hex is always in the JSON), never an error.
"""

from __future__ import annotations

import struct
import uuid
from typing import Final

from ._tables import (
    EV_ACTION,
    EV_EFI_ACTION,
    EV_EFI_BOOT_SERVICES_APPLICATION,
    EV_EFI_BOOT_SERVICES_DRIVER,
    EV_EFI_PLATFORM_FIRMWARE_BLOB,
    EV_EFI_RUNTIME_SERVICES_DRIVER,
    EV_EFI_VARIABLE_AUTHORITY,
    EV_EFI_VARIABLE_BOOT,
    EV_EFI_VARIABLE_BOOT2,
    EV_EFI_VARIABLE_DRIVER_CONFIG,
    EV_EVENT_TAG,
    EV_IPL,
    EV_NO_ACTION,
    EV_POST_CODE,
    EV_S_CRTM_VERSION,
    EV_SEPARATOR,
    STARTUP_LOCALITY_SIGNATURE,
)

__all__ = ["decode_details"]

# PFP 10.4.4 (UEFI_VARIABLE_DATA): EFI_GUID VariableName, UINT64 UnicodeNameLength (in CHAR16),
# UINT64 VariableDataLength, CHAR16 UnicodeName[], INT8 VariableData[].
_VARIABLE_HEADER: Final = struct.Struct("<16sQQ")
_CHAR16: Final = 2
# PFP 10.4.3 (UEFI_IMAGE_LOAD_EVENT): ImageLocationInMemory, ImageLengthInMemory, ImageLinkTimeAddress,
# LengthOfDevicePath (all UINT64/UINTN on 64-bit firmware), then the device path.
_IMAGE_LOAD: Final = struct.Struct("<QQQQ")
# PFP 10.4.2 (UEFI_PLATFORM_FIRMWARE_BLOB): PHYSICAL_ADDRESS BlobBase, UINT64 BlobLength.
_FIRMWARE_BLOB: Final = struct.Struct("<QQ")
# PFP 10.4.2 (TCG_PCClientTaggedEvent): UINT32 taggedEventID, UINT32 taggedEventDataSize, data.
_TAGGED_EVENT: Final = struct.Struct("<II")
_SEPARATOR: Final = struct.Struct("<I")
_NO_ACTION_SIGNATURE_SIZE: Final = 16

_VARIABLE_EVENTS: Final = frozenset(
    {EV_EFI_VARIABLE_DRIVER_CONFIG, EV_EFI_VARIABLE_BOOT, EV_EFI_VARIABLE_BOOT2, EV_EFI_VARIABLE_AUTHORITY}
)
_IMAGE_EVENTS: Final = frozenset(
    {EV_EFI_BOOT_SERVICES_APPLICATION, EV_EFI_BOOT_SERVICES_DRIVER, EV_EFI_RUNTIME_SERVICES_DRIVER}
)
_STRING_EVENTS: Final = frozenset({EV_IPL, EV_POST_CODE, EV_ACTION, EV_EFI_ACTION})


def decode_details(event_type: int, data: bytes) -> dict[str, object] | None:
    """Readable fields of an event's data, or None when the type has no decoder or the data does not fit."""
    if event_type in _VARIABLE_EVENTS:
        return _variable(data)
    if event_type in _IMAGE_EVENTS:
        return _image_load(data)
    if event_type in _STRING_EVENTS:
        text = _ascii(data)
        if text is not None:
            return {"string": text}
        if event_type == EV_POST_CODE and len(data) == _FIRMWARE_BLOB.size:
            return _firmware_blob(data)
        return None
    if event_type == EV_EFI_PLATFORM_FIRMWARE_BLOB and len(data) == _FIRMWARE_BLOB.size:
        return _firmware_blob(data)
    if event_type == EV_S_CRTM_VERSION:
        text = _utf16(data) or _ascii(data)
        return {"string": text} if text is not None else None
    if event_type == EV_SEPARATOR and len(data) == _SEPARATOR.size:
        return {"value": _SEPARATOR.unpack(data)[0]}
    if event_type == EV_EVENT_TAG:
        return _tagged(data)
    if event_type == EV_NO_ACTION:
        return _no_action(data)
    return None


def _ascii(data: bytes) -> str | None:
    """The data as text when it is printable ASCII (trailing NULs dropped), else None."""
    body = data.rstrip(b"\x00")
    if not body or not body.isascii():
        return None
    text = body.decode("ascii")
    return text if text.isprintable() else None


def _utf16(data: bytes) -> str | None:
    if len(data) % _CHAR16:
        return None
    try:
        text = data.decode("utf-16-le").rstrip("\x00")
    except UnicodeDecodeError:
        return None
    return text if text and text.isprintable() else None


def _guid(raw: bytes) -> str:
    # EFI_GUID is Data1 (UINT32 LE), Data2, Data3 (UINT16 LE), Data4[8]: the "bytes_le" layout of a UUID.
    return str(uuid.UUID(bytes_le=raw))


def _variable(data: bytes) -> dict[str, object] | None:
    if len(data) < _VARIABLE_HEADER.size:
        return None
    guid, name_chars, value_size = _VARIABLE_HEADER.unpack_from(data)
    name_end = _VARIABLE_HEADER.size + name_chars * _CHAR16
    if name_end + value_size != len(data):
        return None
    try:
        name = data[_VARIABLE_HEADER.size : name_end].decode("utf-16-le")
    except UnicodeDecodeError:
        return None
    return {"variable_guid": _guid(guid), "variable_name": name, "variable_data_size": value_size}


def _image_load(data: bytes) -> dict[str, object] | None:
    if len(data) < _IMAGE_LOAD.size:
        return None
    location, length, link_time, path_size = _IMAGE_LOAD.unpack_from(data)
    if _IMAGE_LOAD.size + path_size != len(data):
        return None
    return {
        "image_location": location,
        "image_length": length,
        "image_link_time_address": link_time,
        "device_path_size": path_size,
    }


def _firmware_blob(data: bytes) -> dict[str, object]:
    base, length = _FIRMWARE_BLOB.unpack(data)
    return {"blob_base": base, "blob_length": length}


def _tagged(data: bytes) -> dict[str, object] | None:
    if len(data) < _TAGGED_EVENT.size:
        return None
    tag, size = _TAGGED_EVENT.unpack_from(data)
    if _TAGGED_EVENT.size + size != len(data):
        return None
    details: dict[str, object] = {"tagged_event_id": tag, "tagged_event_data_size": size}
    text = _ascii(data[_TAGGED_EVENT.size :])
    if text is not None:
        details["string"] = text
    return details


def _no_action(data: bytes) -> dict[str, object] | None:
    signature = _ascii(data[:_NO_ACTION_SIGNATURE_SIZE])
    if signature is None:
        return None
    details: dict[str, object] = {"signature": signature}
    if data.startswith(STARTUP_LOCALITY_SIGNATURE) and len(data) == len(STARTUP_LOCALITY_SIGNATURE) + 1:
        details["startup_locality"] = data[-1]
    return details
