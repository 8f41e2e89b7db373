"""`unified-perception quantize`: an INT8 QDQ model that the runtime loads under the contract, whose
outputs follow the float32 model within stated tolerances, calibrated on a bag with the model's own
temporal state; a bad calibration bag gets one clear message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from replay_helpers import SIZE, synth
from test_architecture import _violations
from unified_perception.cli import main as cli_main
from unified_perception.contract import MetadataKey
from unified_perception.deploy.agreement import compare_models, rotation_angle_deg
from unified_perception.deploy.quantize import (DEPTH_PREDICT_SCOPES, ENCODER_STEM_SCOPES, kept_float_nodes,
                                               model_frames)
from unified_perception.eval.replay_input import InputBag
from unified_perception.runtime import int8_saturation
from unified_perception.runtime.engine import (DISABLED_OPTIMIZERS, CameraFrame, EngineConfig,
                                               InferenceEngine)
from unified_perception.train.export_fp16 import store_weights_fp16

# Tolerances of the INT8 model against float32 on the tiny random model (random weights make
# near-ties in the argmax and the softmax common, so these are looser than on a trained model).
MAX_DEPTH_REL_ERROR = 0.08          # mean |d - d32| / d32
MIN_SEMANTIC_AGREEMENT = 0.93       # fraction of pixels with the same class
MAX_POSE_TRANSLATION_M = 0.002      # largest difference of the relative translation
MAX_POSE_ROTATION_DEG = 0.2
MAX_STEERING_RAD = 0.01


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A calibration bag and a held-out bag (another seed) of the synthetic world at 64x128."""
    root = tmp_path_factory.mktemp("quantize_bags")
    return synth(root / "calibration"), synth(root / "held_out", "--seed", "11")


@pytest.fixture(scope="module")
def quantized(tiny_model_path: Path, bags: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "tiny_int8.onnx"
    assert cli_main(["quantize", str(tiny_model_path), "--calibration", str(bags[0]),
                     "--out", str(out), "--frames", "5"]) == 0
    return out


def test_the_quantized_model_loads_under_the_contract_with_its_metadata_marked(
        quantized: Path, tiny_model_path: Path) -> None:
    engine = InferenceEngine(EngineConfig(str(quantized), providers=("cpu",), warmup_runs=0))
    reference = InferenceEngine(EngineConfig(str(tiny_model_path), providers=("cpu",), warmup_runs=0))
    assert engine.output_names == reference.output_names
    quant = engine.metadata.quantization
    assert quant["format"] == "QDQ" and quant["precision"] == "int8"
    assert quant["calibration"]["frames"] == 5
    correction = quant["pose_translation_correction"]        # 4 frame pairs: too few to estimate
    assert correction["applied"] is False and "fewer than" in correction["reason"]
    assert reference.metadata.quantization == {}
    props, source = _metadata(quantized), _metadata(tiny_model_path)
    assert {k: v for k, v in props.items() if k != MetadataKey.QUANTIZATION.value} == source
    engine.close()
    reference.close()


def test_info_says_which_precision_a_model_computes_in(quantized: Path, tiny_model_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["info", str(quantized)]) == 0
    out = capsys.readouterr().out
    assert "precision: INT8 QDQ for cpu" in out
    assert "pose translation x" not in out, "five calibration frames are too few for a correction"
    assert cli_main(["info", str(tiny_model_path)]) == 0
    assert "precision: float32 compute" in capsys.readouterr().out


def test_convolutions_run_in_int8_and_the_pose_decoder_encoder_stem_and_depth_bins_stay_float(
        quantized: Path) -> None:
    graph = onnx.load(str(quantized)).graph
    weights = {i.name: i for i in graph.initializer}
    int8_weights = [w for w in weights.values() if w.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) > 20
    assert any(len(w.dims) == 4 and w.dims[0] > 1 for w in int8_weights)    # conv kernels
    per_channel = [n for n in graph.node if n.op_type == "DequantizeLinear"
                   and weights.get(n.input[1]) is not None and len(weights[n.input[1]].dims) == 1]
    assert per_channel, "weights should be quantized per output channel"
    # The pose decoder (its six numbers are integrated into odometry) stays float; the motion
    # decoders, which read the previous frame's features too, run in int8.
    int8_names = {w.name for w in int8_weights}
    dequantized = {n.output[0] for n in graph.node
                   if n.op_type == "DequantizeLinear" and n.input[0] in int8_names}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert any(n.input[1] in dequantized for n in convs)
    pose = set(kept_float_nodes(graph, ("/model/pose/",)))
    pose_convs = [n for n in convs if n.name in pose]
    assert pose_convs and not any(n.input[1] in dequantized for n in pose_convs)
    motion = set(kept_float_nodes(graph, ("/model/motion/",)))
    assert any(n.input[1] in dequantized for n in convs if n.name in motion)
    # The encoder's first convolution reads the normalised image itself, float; its first
    # residual stage (the same kernel shape family, 'layer1') is int8.
    stem_nodes = set(kept_float_nodes(graph, ENCODER_STEM_SCOPES))
    stem = [n for n in convs if n.name in stem_nodes]
    assert len(stem) == 1 and stem[0].input[1] not in dequantized
    assert not [n for n in graph.node if n.op_type == "QuantizeLinear"
                and n.input[0].startswith("/model/normalize/")], "the normalised image stays float"
    layer1 = [n for n in convs if n.output[0].startswith("/model/encoder/layer1/")]
    assert layer1 and all(n.input[1] in dequantized for n in layer1)
    # The depth bins' logits stay float (7-bit weights there cost depth accuracy); the rest of
    # the depth decoder is int8.
    predict = set(kept_float_nodes(graph, DEPTH_PREDICT_SCOPES))
    predict_convs = [n for n in convs if n.name in predict]
    assert predict_convs and not any(n.input[1] in dequantized for n in predict_convs)
    depth = set(kept_float_nodes(graph, ("/model/depth/",))) - predict
    assert any(n.input[1] in dequantized for n in convs if n.name in depth)


@pytest.mark.parametrize("disabled", [(), DISABLED_OPTIMIZERS])
def test_the_engine_keeps_the_stem_max_pool_float_where_qdq_propagation_would_quantize_it(
        quantized: Path, tmp_path: Path, disabled: tuple[str, ...]) -> None:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(quantized), options, providers=["CPUExecutionProvider"],
                         disabled_optimizers=list(disabled))
    graph = onnx.load(str(tmp_path / "optimized.onnx")).graph
    producer = {out: n.op_type for n in graph.node for out in n.output}
    pool = [n for n in graph.node if n.op_type == "MaxPool" and n.name.startswith("/model/encoder/maxpool/")]
    assert len(pool) == 1
    # ONNX Runtime's default moves the stem's QuantizeLinear above the max-pool (a slow uint8
    # max-pool); the engine's session turns that off and the max-pool reads the float ReLU.
    assert producer[pool[0].input[0]] == ("Relu" if disabled else "DequantizeLinear")


def test_a_model_with_float16_stored_weights_gets_int8_convolutions_like_its_float32_export(
        quantized: Path, tiny_model_path: Path, bags: tuple[Path, Path], tmp_path: Path) -> None:
    proto = onnx.load(str(tiny_model_path))
    store_weights_fp16(proto)
    half = tmp_path / "tiny_fp16w.onnx"
    onnx.save(proto, str(half))
    out = tmp_path / "tiny_fp16w_int8.onnx"
    assert cli_main(["quantize", str(half), "--calibration", str(bags[0]), "--out", str(out),
                     "--frames", "5"]) == 0
    graph = onnx.load(str(out)).graph

    def int8_kernels(g: onnx.GraphProto) -> set[tuple[int, ...]]:
        return {tuple(i.dims) for i in g.initializer
                if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 4}

    assert int8_kernels(graph) == int8_kernels(onnx.load(str(quantized)).graph)
    assert not any(i.data_type == onnx.TensorProto.FLOAT16 for i in graph.initializer)


def test_outputs_keep_their_dtypes_and_follow_the_float_model(quantized: Path, tiny_model_path: Path,
                                                              bags: tuple[Path, Path]) -> None:
    with InputBag(bags[1]) as bag:
        images = [frame[0] for frame in model_frames(bag, SIZE) if frame is not None]
    engine = InferenceEngine(EngineConfig(str(quantized), providers=("cpu",), warmup_runs=0))
    first, second = (engine.infer([CameraFrame("c", im, 0.1 * i)])[0] for i, im in enumerate(images[:2]))
    engine.close()
    assert second.pair_valid and not first.pair_valid
    assert second.semantic.dtype == np.uint8 and second.panoptic.dtype == np.int32
    assert second.instances.dtype == np.int32 and second.depth_m.dtype == np.float32

    agreement = compare_models(quantized, tiny_model_path, images)
    assert agreement.frames == len(images)
    assert agreement.depth_rel_error <= MAX_DEPTH_REL_ERROR, agreement
    assert agreement.semantic_agreement >= MIN_SEMANTIC_AGREEMENT, agreement
    assert agreement.pose_translation_m <= MAX_POSE_TRANSLATION_M, agreement
    assert agreement.pose_rotation_deg <= MAX_POSE_ROTATION_DEG, agreement
    assert agreement.steering_abs_rad <= MAX_STEERING_RAD, agreement
    assert agreement.depth_rel_error > 0.0, "the INT8 model should not be the float one"


def _activation_zero_points(path: Path) -> list[np.ndarray]:
    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}
    return [onnx.numpy_helper.to_array(inits[n.input[2]]) for n in graph.node
            if n.op_type == "QuantizeLinear" and len(n.input) > 2]


def test_the_cpu_target_has_uint8_activations_and_the_tensorrt_target_symmetric_int8(
        quantized: Path, tiny_model_path: Path, bags: tuple[Path, Path], tmp_path: Path) -> None:
    cpu = _activation_zero_points(quantized)
    assert cpu and all(z.dtype == np.uint8 for z in cpu) and any(z.any() for z in cpu)
    out = tmp_path / "tiny_trt.onnx"
    assert cli_main(["quantize", str(tiny_model_path), "--calibration", str(bags[0]), "--out", str(out),
                     "--frames", "3", "--target", "tensorrt"]) == 0
    trt = _activation_zero_points(out)
    assert trt and all(z.dtype == np.int8 and not z.any() for z in trt), "TensorRT needs zero points 0"
    engine = InferenceEngine(EngineConfig(str(out), providers=("cpu",), warmup_runs=0))
    assert engine.metadata.quantization["target"] == "tensorrt"
    assert engine.metadata.quantization["weight_bits"] == 8
    engine.close()
    assert max(np.abs(w.astype(int)).max() for w in _int8_conv_weights(out)) == 127


def _metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _int8_conv_weights(path: Path) -> list[np.ndarray]:
    """The int8 convolution weights ``[out, in, kh, kw]`` stored in a QDQ file."""
    return [onnx.numpy_helper.to_array(init) for init in onnx.load(str(path)).graph.initializer
            if init.data_type == onnx.TensorProto.INT8 and len(init.dims) == 4]


def test_cpu_files_get_7_bit_weights_unless_8_are_asked_for(
        quantized: Path, tiny_model_path: Path, bags: tuple[Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """7-bit weights keep the u8s8 pair sums of x86 CPUs without VNNI inside int16; the engine
    warns when a full-range file runs on such a CPU."""
    weights = _int8_conv_weights(quantized)
    assert weights and max(np.abs(w.astype(int)).max() for w in weights) == 64
    assert json.loads(_metadata(quantized)[MetadataKey.QUANTIZATION.value])["weight_bits"] == 7
    full = tmp_path / "tiny_w8.onnx"
    assert cli_main(["quantize", str(tiny_model_path), "--calibration", str(bags[0]), "--out", str(full),
                     "--frames", "3", "--weight-bits", "8"]) == 0
    assert max(np.abs(w.astype(int)).max() for w in _int8_conv_weights(full)) == 127
    assert json.loads(_metadata(full)[MetadataKey.QUANTIZATION.value])["weight_bits"] == 8
    monkeypatch.setattr(int8_saturation, "x86_without_vnni", lambda *_: True)    # an AVX2 CPU
    for path, warns in ((quantized, False), (full, True)):
        lines: list[str] = []
        InferenceEngine(EngineConfig(str(path), providers=("cpu",), warmup_runs=0), log=lines.append).close()
        assert any("--weight-bits 7" in line for line in lines) == warns, lines


def _run_quantize(capsys: pytest.CaptureFixture, model: Path, bag: Path, out: Path, *extra: str
                  ) -> tuple[int, str]:
    code = cli_main(["quantize", str(model), "--calibration", str(bag), "--out", str(out), *extra])
    return code, capsys.readouterr().err


def test_a_bag_without_the_camera_topic_gets_one_clear_message(
        tiny_model_path: Path, bags: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    topic_map = tmp_path / "topics.yaml"
    topic_map.write_text(json.dumps({"image": "/left/image_raw"}))
    code, err = _run_quantize(capsys, tiny_model_path, bags[0], tmp_path / "x.onnx", "--topics", str(topic_map))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "calibration bag" in err and "'/left/image_raw'" in err and "/camera/image_raw" in err
    assert not (tmp_path / "x.onnx").exists()


def test_a_missing_or_non_bag_calibration_folder_gets_one_clear_message(
        tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = _run_quantize(capsys, tiny_model_path, tmp_path / "nowhere", tmp_path / "x.onnx")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "does not exist" in err
    not_a_bag = tmp_path / "not_a_bag"
    not_a_bag.mkdir()
    (not_a_bag / "notes.txt").write_text("no bag here")
    code, err = _run_quantize(capsys, tiny_model_path, not_a_bag, tmp_path / "x.onnx")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "calibration bag" in err
    assert not (tmp_path / "x.onnx").exists()


def test_an_already_quantized_model_is_refused(quantized: Path, bags: tuple[Path, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    code, err = _run_quantize(capsys, quantized, bags[0], tmp_path / "again.onnx")
    assert code == 2 and "already quantized" in err


def test_deploy_imports_neither_torch_nor_ros_nor_train() -> None:
    assert _violations("deploy/", {"ros", "train"}) == []


def test_rotation_angle_reads_small_angles_and_float32_identity() -> None:
    for angle in (1e-5, 0.01, 3.0):                    # rad, about an oblique axis
        axis = np.array([0.6, 0.8, 0.0])
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        R = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
        assert rotation_angle_deg(R) == pytest.approx(np.degrees(angle), rel=1e-9)
    rounded = np.diag(np.float32([1 - 1e-7] * 3))       # the identity after float32 rounding
    assert rotation_angle_deg(rounded) < 1e-4           # arccos of the trace read 0.03 degrees
