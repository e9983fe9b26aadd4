"""Tests for models.core.metadata: the model sidecar schema."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from models.core.atomic import TEMP_MARKER, sha256_file
from models.core.metadata import (
    SCHEMA_VERSION,
    MetadataMismatch,
    ModelMetadata,
    TensorSpec,
    avlive_version,
    sidecar_path,
)


def make(**overrides):
    kwargs = dict(
        family="slowfast",
        task="labeler",
        labels=("dog", "speech", "siren"),
        sample_rate=16000,
        window_seconds=1.0,
        needs_frame=True,
        frontend={"n_mels": 64, "hop_length": 160, "fmin": 50.0, "sizes": (224, 224)},
        inputs=(TensorSpec("audio", ("batch", 16000), "float32"), TensorSpec("frame", ["batch", 3, 224, 224], "uint8")),
        outputs=(TensorSpec("logits", ("batch", 3), "float32"),),
        checkpoint_sha256="ab" * 32,
        extra={"thresholds": {"dog": 0.5, "speech": 0.4, "siren": 0.6}},
        created_at="2025-01-01T00:00:00+00:00",
    )
    kwargs.update(overrides)
    return ModelMetadata(**kwargs)


# ------------------------------------------------------------------------------------ round trip


def test_json_round_trip_is_equal():
    meta = make()
    text = meta.to_json()
    assert text.endswith("\n")
    back = ModelMetadata.from_json(text)
    assert back == meta
    assert back.to_json() == text


def test_normalisation_lists_to_tuples_and_tuples_in_frontend_to_lists():
    meta = make(labels=["dog", "speech", "siren"], window_seconds=2)
    assert meta.labels == ("dog", "speech", "siren")
    assert meta.inputs[1].shape == ("batch", 3, 224, 224)
    assert isinstance(meta.window_seconds, float) and meta.window_seconds == 2.0
    assert meta.frontend["sizes"] == [224, 224]


def test_frontend_is_copied_not_shared():
    frontend = {"n_mels": 64, "nested": {"a": [1, 2]}}
    meta = make(frontend=frontend)
    frontend["nested"]["a"].append(3)
    assert meta.frontend == {"n_mels": 64, "nested": {"a": [1, 2]}}
    meta.to_dict()["frontend"]["n_mels"] = 1
    assert meta.frontend["n_mels"] == 64


def test_numpy_scalars_in_frontend_become_python_scalars():
    meta = make(frontend={"fmax": np.float32(8000.0), "n": np.int64(3)})
    assert meta.frontend == {"fmax": 8000.0, "n": 3}
    assert type(meta.frontend["n"]) is int
    json.loads(meta.to_json())


def test_frozen_and_hashable():
    meta = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.sample_rate = 8000  # type: ignore[misc]
    assert hash(meta) == hash(make())


def test_defaults_and_created_by():
    meta = ModelMetadata(family="l3", task="embedding", labels=(), sample_rate=48000, window_seconds=1.0,
                         needs_frame=True, inputs=[{"name": "audio", "shape": [1, 48000], "dtype": "float32"}],
                         outputs=[{"name": "emb", "shape": [1, 512], "dtype": "float32"}])
    assert meta.schema_version == SCHEMA_VERSION
    assert meta.frontend == {} and meta.extra == {} and meta.checkpoint_sha256 is None
    assert meta.created_by == f"avlive {avlive_version()}"
    assert avlive_version() != "unknown"
    assert ModelMetadata.from_json(meta.to_json()) == meta


def test_save_load_atomic(tmp_path):
    meta = make()
    path = sidecar_path(tmp_path / "model.onnx")
    assert path.name == "model.onnx.json"
    meta.save(path)
    assert ModelMetadata.load(path) == meta
    assert not [p for p in tmp_path.iterdir() if TEMP_MARKER in p.name]


def test_load_error_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: model metadata is not valid JSON"):
        ModelMetadata.load(path)


def test_replace_validates():
    meta = make()
    assert meta.replace(sample_rate=8000).sample_rate == 8000
    with pytest.raises(ValueError, match="sample_rate"):
        meta.replace(sample_rate=0)


# ------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("overrides", "field_name", "found"),
    [
        ({"family": ""}, "family", "''"),
        ({"family": 3}, "family", "3"),
        ({"task": "detector"}, "task", "'detector'"),
        ({"labels": "dog"}, "labels", "'dog'"),
        ({"labels": ("dog", "")}, r"labels\[1\]", "''"),
        ({"labels": ("dog", 7)}, r"labels\[1\]", "7"),
        ({"labels": ("dog", "cat", "dog")}, r"labels\[2\]", "'dog' again"),
        ({"labels": ()}, "labels", "none"),
        ({"sample_rate": 0}, "sample_rate", "0"),
        ({"sample_rate": 16000.0}, "sample_rate", "16000.0"),
        ({"sample_rate": True}, "sample_rate", "True"),
        ({"window_seconds": -1.0}, "window_seconds", "-1.0"),
        ({"window_seconds": float("nan")}, "window_seconds", "nan"),
        ({"window_seconds": "1"}, "window_seconds", "'1'"),
        ({"needs_frame": 1}, "needs_frame", "1"),
        ({"frontend": [1]}, "frontend", r"\[1\]"),
        ({"frontend": {"win": object()}}, r"frontend\['win'\]", "object"),
        ({"frontend": {"x": float("inf")}}, r"frontend\['x'\]", "inf"),
        ({"frontend": {1: 2}}, "frontend key", "1"),
        ({"extra": {"t": [1, {2, 3}]}}, r"extra\['t'\]\[1\]", "set"),
        ({"inputs": ()}, "inputs", "none"),
        ({"inputs": "audio"}, "inputs", "'audio'"),
        ({"inputs": [{"name": "a", "shape": [1], "dtype": "float32"}, {"name": "a", "shape": [1], "dtype": "float32"}]},
         r"inputs\[1\]\.name", "'a'"),
        ({"inputs": [{"name": "a", "shape": [0], "dtype": "float32"}]}, r"inputs\[0\]\.shape\[0\]", "0"),
        ({"inputs": [{"name": "a", "shape": [1, None], "dtype": "float32"}]}, r"inputs\[0\]\.shape\[1\]", "None"),
        ({"inputs": [{"name": "a", "shape": "1x2", "dtype": "float32"}]}, r"inputs\[0\]\.shape", "'1x2'"),
        ({"outputs": [{"name": "y", "shape": [1], "dtype": "float"}]}, r"outputs\[0\]\.dtype", "'float'"),
        ({"outputs": [{"name": "", "shape": [1], "dtype": "float32"}]}, r"outputs\[0\]\.name", "''"),
        ({"outputs": [{"name": "y", "shape": [1]}]}, r"outputs\[0\]", ".*missing dtype"),
        ({"outputs": [{"name": "y", "shape": [1], "dtype": "float32", "layout": "NCHW"}]},
         r"outputs\[0\]\.layout", "'NCHW'"),
        ({"checkpoint_sha256": "abc"}, "checkpoint_sha256", "'abc'"),
        ({"checkpoint_sha256": "AB" * 32}, "checkpoint_sha256", "'ABAB"),
        ({"created_by": ""}, "created_by", "''"),
        ({"created_at": 5}, "created_at", "5"),
    ],
)
def test_validation_error_names_field_expected_and_found(overrides, field_name, found):
    with pytest.raises(ValueError, match=rf"field {field_name}: expected .*, found {found}") as info:
        make(**overrides)
    assert not isinstance(info.value, MetadataMismatch)


def test_tensor_spec_direct_validation():
    with pytest.raises(ValueError, match=r"field tensor\.dtype: expected one of .*float32.*, found 'f32'"):
        TensorSpec("x", (1,), "f32")
    spec = TensorSpec("x", [1, "time"], "int64")
    assert spec.shape == (1, "time") and spec.is_dynamic
    assert TensorSpec.from_dict(spec.to_dict()) == spec


def test_embedding_may_have_no_labels_but_labeler_may_not():
    make(task="embedding", labels=())
    with pytest.raises(ValueError, match="field labels: expected at least one label for a localizer, found none"):
        make(task="localizer", labels=())


def test_unknown_schema_version_is_a_clear_error():
    data = make().to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    data["created_by"] = "avlive 9.0"
    with pytest.raises(ValueError, match=rf"schema_version: expected {SCHEMA_VERSION}, found {SCHEMA_VERSION + 1} "
                                         r"\(the sidecar was written by avlive 9\.0 with a newer schema; upgrade"):
        ModelMetadata.from_json(json.dumps(data))
    data["schema_version"] = "1"
    with pytest.raises(ValueError, match=r"schema_version: expected 1, found '1'"):
        ModelMetadata.from_dict(data)
    with pytest.raises(ValueError, match="schema_version: expected 1, found 0"):
        make(schema_version=0)


def test_missing_schema_version_and_fields():
    data = make().to_dict()
    del data["schema_version"]
    with pytest.raises(ValueError, match="field schema_version: expected 1, found no schema_version field"):
        ModelMetadata.from_dict(data)
    data = make().to_dict()
    del data["labels"], data["needs_frame"]
    with pytest.raises(ValueError, match="field labels: expected a value, found none "
                                         r"\(missing fields: labels, needs_frame\)"):
        ModelMetadata.from_dict(data)


def test_optional_fields_may_be_absent_from_json():
    data = make().to_dict()
    for key in ("frontend", "extra", "checkpoint_sha256", "created_at"):
        del data[key]
    meta = ModelMetadata.from_dict(data)
    assert meta.frontend == {} and meta.checkpoint_sha256 is None


def test_unknown_field_is_rejected():
    data = make().to_dict()
    data["labelz"] = ["x"]
    with pytest.raises(ValueError, match=r"unknown model metadata field labelz: expected only the schema 1 fields "
                                         r"\(.*\), found labelz=\['x'\]"):
        ModelMetadata.from_dict(data)


def test_non_object_json():
    with pytest.raises(ValueError, match=r"field \(top level\): expected a JSON object, found \[1, 2\]"):
        ModelMetadata.from_json("[1, 2]")


# ------------------------------------------------------------------------------------ compatibility


def test_check_compatible_passes():
    meta = make()
    meta.check_compatible()
    meta.check_compatible(sample_rate=16000, labels=["dog", "speech", "siren"],
                          inputs=[TensorSpec("audio", (1, 16000), "float32"),
                                  {"name": "frame", "shape": ["b", 3, 224, 224], "dtype": "uint8"}],
                          outputs=[TensorSpec("logits", (8, 3), "float32")])


def test_mismatch_sample_rate():
    with pytest.raises(MetadataMismatch, match="mismatch in sample_rate: expected 48000, found 16000") as info:
        make().check_compatible(sample_rate=48000)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.field, err.expected, err.found) == ("sample_rate", 48000, 16000)


def test_mismatch_labels_order_and_membership():
    meta = make()
    with pytest.raises(MetadataMismatch, match=r"labels: expected \('speech', 'dog', 'siren'\), "
                                               r"found \('dog', 'speech', 'siren'\) \(same labels in a different order; "
                                               r"first difference at index 0"):
        meta.check_compatible(labels=("speech", "dog", "siren"))
    with pytest.raises(MetadataMismatch, match=r"2 labels expected, the model has 3; model lacks \['cat'\]; "
                                               r"model also has \['speech', 'siren'\]"):
        meta.check_compatible(labels=("dog", "cat"))
    with pytest.raises(MetadataMismatch, match=r"first difference at index 2: 'horn' expected, found 'siren'"):
        meta.check_compatible(labels=("dog", "speech", "horn"))


@pytest.mark.parametrize(
    ("inputs", "field_name", "detail"),
    [
        ([TensorSpec("audio", (1, 16000), "float32")], "inputs", "1 tensors expected, the model has 2"),
        ([TensorSpec("wave", (1, 16000), "float32"), TensorSpec("frame", (1, 3, 224, 224), "uint8")],
         r"inputs\[0\]\.name", ""),
        ([TensorSpec("audio", (1, 16000), "float16"), TensorSpec("frame", (1, 3, 224, 224), "uint8")],
         r"inputs\[0\]\.dtype", "tensor 'audio'"),
        ([TensorSpec("audio", (1, 8000), "float32"), TensorSpec("frame", (1, 3, 224, 224), "uint8")],
         r"inputs\[0\]\.shape", "tensor 'audio', axis 1: 8000 expected, the model has 16000"),
        ([TensorSpec("audio", (1, 16000), "float32"), TensorSpec("frame", (1, 3, 224), "uint8")],
         r"inputs\[1\]\.shape", "tensor 'frame': rank 3 expected, the model has rank 4"),
        ([TensorSpec("audio", (1, 16000), "float32"), TensorSpec("frame", (1, 3, "h", 224), "uint8")],
         r"inputs\[1\]\.shape", "axis 2: 'h' expected, the model has 224"),
    ],
)
def test_mismatch_inputs(inputs, field_name, detail):
    with pytest.raises(MetadataMismatch, match=rf"mismatch in {field_name}: expected .*, found .*{detail}"):
        make().check_compatible(inputs=inputs)


def test_mismatch_outputs():
    with pytest.raises(MetadataMismatch, match=r"outputs\[0\]\.shape: expected \(1, 4\), found \('batch', 3\)"):
        make().check_compatible(outputs=[TensorSpec("logits", (1, 4), "float32")])


def test_check_checkpoint(tmp_path):
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights")
    meta = make(checkpoint_sha256=sha256_file(ckpt))
    meta.check_checkpoint(ckpt)
    ckpt.write_bytes(b"other weights")
    with pytest.raises(MetadataMismatch, match="checkpoint_sha256: expected '[0-9a-f]{64}', found '[0-9a-f]{64}'"):
        meta.check_checkpoint(ckpt)
    with pytest.raises(ValueError, match="records no checkpoint_sha256"):
        make(checkpoint_sha256=None).check_checkpoint(ckpt)
