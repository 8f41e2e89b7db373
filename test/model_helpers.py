"""Model files the tests derive from an exported contract model (plain onnx edits, no ROS)."""

from __future__ import annotations

from pathlib import Path

import onnx

from unified_perception.contract import MetadataKey


def with_contract_version(source: Path, target: Path, version: str) -> Path:
    """Write ``source`` to ``target`` with its contract version metadata set to ``version``."""
    model = onnx.load(str(source))
    for prop in model.metadata_props:
        if prop.key == MetadataKey.CONTRACT_VERSION.value:
            prop.value = version
    onnx.save(model, str(target))
    return target
