"""The model contract: metadata round-trips, and a model's I/O is checked with messages that name
what is wrong. Runtime-side rejection of real exported models is in test_runtime_*."""

from __future__ import annotations

import pytest

from unified_perception import contract
from unified_perception.contract import ContractError, ModelMetadata, Task, TensorInfo


def _metadata(tasks=contract.ALL_TASKS) -> ModelMetadata:
    return ModelMetadata(contract_version=contract.CONTRACT_VERSION, tasks=tuple(tasks),
                         input_height=64, input_width=128,
                         intrinsics_normalized=(0.58, 1.92, 0.5, 0.5),
                         depth_min_m=0.1, depth_max_m=100.0, latent_dim=32)


def _io(meta: ModelMetadata) -> tuple[list[TensorInfo], list[TensorInfo]]:
    h, w = meta.input_height, meta.input_width
    dims = {"H": h, "W": w, "D": meta.latent_dim, "N": None}
    inputs = [TensorInfo("image", "tensor(uint8)", ("N", h, w, 3)),
              TensorInfo("state_in_features", "tensor(float)", ("N", 8, 2, 4))]
    outputs = [TensorInfo(name, contract.OUTPUT_BY_NAME[name].dtype,
                          tuple(dims.get(d, d) if isinstance(d, str) else d
                                for d in contract.OUTPUT_BY_NAME[name].shape))
               for name in meta.expected_outputs]
    outputs.append(TensorInfo("state_out_features", "tensor(float)", ("N", 8, 2, 4)))
    return inputs, outputs


def test_metadata_round_trips_through_onnx_props() -> None:
    meta = _metadata()
    assert ModelMetadata.from_props(meta.to_props()) == meta


def test_class_table_is_cityscapes_19_train_ids() -> None:
    assert contract.NUM_CLASSES == 19
    assert [c.train_id for c in contract.CLASSES] == list(range(19))
    assert contract.CLASS_ID["car"] == 13 and contract.CLASSES[13].cityscapes_label_id == 26
    assert contract.THING_CLASS_IDS == tuple(range(11, 19))


def test_two_frame_tasks_require_pair_valid() -> None:
    assert "pair_valid" in contract.expected_outputs([Task.DEPTH, Task.POSE])
    assert "pair_valid" not in contract.expected_outputs([Task.DEPTH])
    assert contract.expected_outputs([Task.DEPTH]) == ("depth", "latent")


def test_a_conforming_model_passes() -> None:
    meta = _metadata()
    inputs, outputs = _io(meta)
    assert contract.check_model_io(inputs, outputs, meta.to_props()) == meta


@pytest.mark.parametrize("version", ["1.0", "3.0", "2.9"])
def test_another_contract_version_is_rejected_naming_it(version: str) -> None:
    """An older major (a 1.0 file: its latent means something else), a newer major and a newer
    minor are all refused, naming the version and saying to re-export."""
    meta = _metadata()
    inputs, outputs = _io(meta)
    props = meta.to_props() | {"contract_version": version}
    with pytest.raises(ContractError, match=rf"contract version is {version}.*[Rr]e-export"):
        contract.check_model_io(inputs, outputs, props, model="m.onnx")


def test_missing_output_and_wrong_dtype_are_all_named() -> None:
    meta = _metadata()
    inputs, outputs = _io(meta)
    outputs = [o for o in outputs if o.name != "scene_flow"]
    outputs = [TensorInfo(o.name, "tensor(int64)", o.shape) if o.name == "semantic" else o
               for o in outputs]
    with pytest.raises(ContractError) as err:
        contract.check_model_io(inputs, outputs, meta.to_props())
    assert "output 'scene_flow' is missing" in str(err.value)
    assert "output 'semantic' is int64" in str(err.value)


def test_state_input_without_output_and_unknown_input_are_rejected() -> None:
    meta = _metadata([Task.DEPTH])
    inputs, outputs = _io(meta)
    outputs = [o for o in outputs if not o.name.startswith("state_out_")]
    inputs.append(TensorInfo("intrinsics", "tensor(float)", ("N", 4)))
    with pytest.raises(ContractError) as err:
        contract.check_model_io(inputs, outputs, meta.to_props())
    assert "'state_in_features' has no output 'state_out_features'" in str(err.value)
    assert "input 'intrinsics' is not part of the contract" in str(err.value)


def test_wrong_input_size_is_rejected() -> None:
    meta = _metadata([Task.DEPTH])
    inputs, outputs = _io(meta)
    inputs[0] = TensorInfo("image", "tensor(uint8)", ("N", 32, 128, 3))
    with pytest.raises(ContractError, match="'image' axis 1 is 32"):
        contract.check_model_io(inputs, outputs, meta.to_props())
