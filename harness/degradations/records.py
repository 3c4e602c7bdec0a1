"""The degradation record: every sampled parameter of one image as a flat, typed dict.

A record is what a manifest row stores and all the pipeline needs to regenerate an LR. Fields are
plain Python scalars (str, int, float, bool, None) so the record goes to CSV or JSON as is;
floats are written with ``repr`` (shortest exact round trip) so a CSV row rebuilds the record
bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["KERNEL_FIELDS", "SECOND_ORDER_FIELDS", "BICUBIC_FIELDS", "record_fields", "to_row", "from_row"]


def _kernel(p: str) -> dict[str, type]:
    return {
        f"{p}_type": str, f"{p}_size": int, f"{p}_sigma_x": float, f"{p}_sigma_y": float,
        f"{p}_theta": float, f"{p}_beta": float, f"{p}_omega": float,
    }


KERNEL_FIELDS = tuple(_kernel("k1"))

_COMMON: dict[str, type] = {"kind": str, "preset": str, "sampler_version": int, "seed": int, "image_id": str, "scale": int}

SECOND_ORDER_FIELDS: dict[str, type] = {
    **_COMMON,
    "usm": bool, "usm_weight": float, "usm_radius": int, "usm_threshold": float, "kernel_pad_to": int,
    **_kernel("k1"),
    "r1_dir": str, "r1_scale": float, "r1_mode": str,
    "n1_kind": str, "n1_level": float, "n1_gray": bool, "n1_seed": int,
    "j1_quality": int,
    "b2": bool,
    **_kernel("k2"),
    "r2_dir": str, "r2_scale": float, "r2_mode": str,
    "n2_kind": str, "n2_level": float, "n2_gray": bool, "n2_seed": int,
    "f_order": str, "f_mode": str, "f_sinc": bool, "f_size": int, "f_omega": float,
    "j2_quality": int,
}

BICUBIC_FIELDS: dict[str, type] = {**_COMMON, "antialias": bool}


def record_fields(kind: str) -> dict[str, type]:
    """Column names and types of a record of ``kind`` ('second_order' or 'bicubic')."""
    if kind == "second_order":
        return SECOND_ORDER_FIELDS
    if kind == "bicubic":
        return BICUBIC_FIELDS
    raise ValueError(f"unknown degradation kind {kind!r}")


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def to_row(record: Mapping[str, Any]) -> dict[str, str]:
    """Record -> CSV cells, in the schema's column order."""
    return {k: _fmt(record.get(k)) for k in record_fields(record["kind"])}


def _parse(key: str, typ: type, s: str) -> Any:
    if s == "":
        return None
    if typ is bool:
        if s not in ("true", "false"):
            raise ValueError(f"{key}: expected true/false, got {s!r}")
        return s == "true"
    return typ(s)


def from_row(row: Mapping[str, str]) -> dict[str, Any]:
    """CSV cells -> record (extra columns such as file names and hashes are ignored)."""
    schema = record_fields(row["kind"])
    missing = [k for k in schema if k not in row]
    if missing:
        raise ValueError(f"manifest row lacks degradation fields {missing}")
    return {k: _parse(k, t, row[k]) for k, t in schema.items()}
