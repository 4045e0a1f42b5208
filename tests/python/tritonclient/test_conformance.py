"""modelgate's Open Inference Protocol (V2), driven by NVIDIA's real tritonclient over both
HTTP/REST and gRPC: every test runs once per protocol.

tests/v2_tritonclient.rs starts the server, issues the keys and sets:

  MODELGATE_HTTP                 host:port of the REST listener
  MODELGATE_GRPC                 host:port of the gRPC listener
  MODELGATE_KEY                  a predict key, unlimited
  MODELGATE_LIMITED_KEY          a predict key limited to a model other than 21
  MODELGATE_PREPAID_KEY_HTTP     prepaid keys with exactly one credit, one per protocol,
  MODELGATE_PREPAID_KEY_GRPC       so that each protocol sees its own first and second infer
  MODELGATE_THROTTLED_KEY_HTTP   keys limited to 1 prediction a minute, one per protocol,
  MODELGATE_THROTTLED_KEY_GRPC     for the same reason
  MODELGATE_ROWS                 JSON file: a list of 100 input rows (objects) for Model 21
  MODELGATE_V1_EXPECTED          JSON file: /api/v1's predictions for those rows, in order
"""

import json
import os
from typing import NamedTuple

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

MODEL = "21"
VERSION = "1.0.0"
MAX_BATCH = 100
# Model 21's inputs in manifest order, with the datatype each is served as.
INPUTS = [
    ("company_size", "FP64"),
    ("engagement_score", "FP64"),
    ("website_visits", "FP64"),
    ("email_opens", "FP64"),
    ("content_downloads", "FP64"),
    ("demo_requested", "BOOL"),
    ("budget_confirmed", "BOOL"),
    ("industry", "BYTES"),
    ("decision_timeline", "BYTES"),
    ("title", "BYTES"),
]
OUTPUTS = [
    ("conversion_probability", "FP64"),
    ("lead_score", "INT64"),
    ("recommendation", "BYTES"),
    ("confidence", "FP64"),
    ("factors", "BYTES"),
]
FLOAT_TOLERANCE = 1e-6


class Answer(NamedTuple):
    """What an infer response says besides its tensors."""

    model_name: str
    model_version: str
    id: str
    outputs: list


def env(name):
    value = os.environ.get(name)
    assert value, f"{name} is not set: run this suite through tests/v2_tritonclient.rs"
    return value


def load_json(variable):
    with open(env(variable), encoding="utf-8") as file:
        return json.load(file)


class Http:
    """tritonclient.http, with what differs from gRPC in how answers and errors read."""

    name = "http"
    module = httpclient

    def __init__(self):
        self.client = httpclient.InferenceServerClient(url=env("MODELGATE_HTTP"))

    @staticmethod
    def auth(key):
        return {"Authorization": f"Bearer {key}"}

    @staticmethod
    def status(http_status, grpc_code):
        # The HTTP client reports the response's status code as the exception's status.
        return str(http_status)

    def server_metadata(self, headers):
        return self.client.get_server_metadata(headers=headers)

    def model_metadata(self, model, headers):
        return self.client.get_model_metadata(model, headers=headers)

    @staticmethod
    def input(name, datatype, array, binary=True):
        tensor = httpclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        return tensor

    @staticmethod
    def output(name, binary=True):
        return httpclient.InferRequestedOutput(name, binary_data=binary)

    @staticmethod
    def answer(result):
        body = result.get_response()
        names = [output["name"] for output in body["outputs"]]
        return Answer(body["model_name"], body["model_version"], body.get("id"), names)

    @staticmethod
    def binary_outputs(result):
        """Whether every output came as binary tensor data after the JSON header."""
        outputs = result.get_response()["outputs"]
        return all("binary_data_size" in o.get("parameters", {}) for o in outputs)


class Grpc:
    """tritonclient.grpc: always sends raw (binary) input contents."""

    name = "grpc"
    module = grpcclient

    def __init__(self):
        self.client = grpcclient.InferenceServerClient(url=env("MODELGATE_GRPC"))

    @staticmethod
    def auth(key):
        # gRPC metadata keys are lower case.
        return {"authorization": f"Bearer {key}"}

    @staticmethod
    def status(http_status, grpc_code):
        return f"StatusCode.{grpc_code}"

    def server_metadata(self, headers):
        metadata = self.client.get_server_metadata(headers=headers)
        return {
            "name": metadata.name,
            "version": metadata.version,
            "extensions": list(metadata.extensions),
        }

    def model_metadata(self, model, headers):
        # Read from the message itself: its JSON form would turn int64 shapes into strings.
        metadata = self.client.get_model_metadata(model, headers=headers)

        def tensors(specs):
            return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in specs]

        return {
            "name": metadata.name,
            "versions": list(metadata.versions),
            "platform": metadata.platform,
            "inputs": tensors(metadata.inputs),
            "outputs": tensors(metadata.outputs),
        }

    # `binary` is HTTP's choice: the gRPC client always sends raw contents.
    @staticmethod
    def input(name, datatype, array, binary=True):
        tensor = grpcclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        return tensor

    @staticmethod
    def output(name, binary=True):
        return grpcclient.InferRequestedOutput(name)

    @staticmethod
    def answer(result):
        body = result.get_response()
        names = [output.name for output in body.outputs]
        return Answer(body.model_name, body.model_version, body.id, names)

    @staticmethod
    def binary_outputs(result):
        """Whether every output came in raw_output_contents, as raw inputs call for."""
        body = result.get_response()
        return len(body.raw_output_contents) == len(body.outputs)


@pytest.fixture(scope="module", params=[Http, Grpc], ids=lambda p: p.name)
def protocol(request):
    return request.param()


@pytest.fixture(scope="module")
def rows():
    rows = load_json("MODELGATE_ROWS")
    assert len(rows) == MAX_BATCH
    return rows


@pytest.fixture(scope="module")
def expected():
    return load_json("MODELGATE_V1_EXPECTED")


def key():
    return env("MODELGATE_KEY")


def column(rows, name, datatype):
    values = [row[name] for row in rows]
    if datatype == "FP64":
        return np.array(values, dtype=np.float64)
    if datatype == "BOOL":
        return np.array(values, dtype=bool)
    return np.array([v.encode("utf-8") for v in values], dtype=np.object_)


def tensors(protocol, rows, binary=True):
    """One input tensor of shape [len(rows)] per input of Model 21."""
    return [
        protocol.input(name, datatype, column(rows, name, datatype), binary)
        for name, datatype in INPUTS
    ]


def infer(protocol, inputs, api_key=None, **kwargs):
    headers = protocol.auth(api_key or key())
    return protocol.client.infer(MODEL, inputs, headers=headers, **kwargs)


def refused(protocol, call, http_status, grpc_code):
    """The InferenceServerException `call` raised, checked to carry the expected status."""
    with pytest.raises(InferenceServerException) as caught:
        call()
    error = caught.value
    assert error.status() == protocol.status(http_status, grpc_code), str(error)
    return error


def texts(array):
    """A BYTES output as str: bytes when sent binary, str when sent as JSON."""
    return [v.decode("utf-8") if isinstance(v, bytes) else v for v in array.tolist()]


def assert_matches_v1(result, expected):
    """Every output of `result`, row by row, equals /api/v1's predictions."""
    probability = result.as_numpy("conversion_probability")
    score = result.as_numpy("lead_score")
    recommendation = texts(result.as_numpy("recommendation"))
    confidence = result.as_numpy("confidence")
    factors = texts(result.as_numpy("factors"))
    assert probability.dtype == np.float64 and score.dtype == np.int64
    for outputs in (probability, score, recommendation, confidence, factors):
        assert len(outputs) == len(expected)
    for i, v1 in enumerate(expected):
        assert abs(probability[i] - v1["conversion_probability"]) <= FLOAT_TOLERANCE, i
        assert score[i] == v1["lead_score"], i
        assert recommendation[i] == v1["recommendation"], i
        assert abs(confidence[i] - v1["confidence"]) <= FLOAT_TOLERANCE, i
        # Each factors element is the JSON text of that row's list.
        assert json.loads(factors[i]) == v1["factors"], i


def test_server_is_live_and_ready(protocol):
    # No key: orchestrators probe these.
    assert protocol.client.is_server_live()
    assert protocol.client.is_server_ready()


def test_server_metadata(protocol):
    metadata = protocol.server_metadata(protocol.auth(key()))
    assert metadata["name"] == "modelgate"
    assert metadata["version"]
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_metadata(protocol):
    metadata = protocol.model_metadata(MODEL, protocol.auth(key()))
    assert metadata["name"] == MODEL
    assert metadata["versions"] == [VERSION]
    assert metadata["platform"] == "onnx"
    assert metadata["inputs"] == [
        {"name": name, "datatype": datatype, "shape": [-1]} for name, datatype in INPUTS
    ]
    assert metadata["outputs"] == [
        {"name": name, "datatype": datatype, "shape": [-1]} for name, datatype in OUTPUTS
    ]


def test_model_ready(protocol):
    assert protocol.client.is_model_ready(MODEL, headers=protocol.auth(key()))
    assert protocol.client.is_model_ready(
        MODEL, model_version=VERSION, headers=protocol.auth(key())
    )


def test_unknown_model_is_not_ready(protocol):
    headers = protocol.auth(key())
    if protocol.name == "http":
        # The HTTP client answers readiness from the status: 404 reads as not ready.
        assert not protocol.client.is_model_ready("no-such-model", headers=headers)
    else:
        refused(
            protocol,
            lambda: protocol.client.is_model_ready("no-such-model", headers=headers),
            404,
            "NOT_FOUND",
        )


def test_infer_at_the_client_defaults(protocol, rows, expected):
    # tritonclient.http's defaults send inputs and ask for outputs as binary tensor data.
    inputs = [protocol.module.InferInput(name, [1], datatype) for name, datatype in INPUTS]
    for tensor, (name, datatype) in zip(inputs, INPUTS):
        tensor.set_data_from_numpy(column(rows[:1], name, datatype))
    outputs = [protocol.module.InferRequestedOutput(name) for name, _ in OUTPUTS]
    result = infer(protocol, inputs, outputs=outputs)
    assert protocol.binary_outputs(result)
    assert_matches_v1(result, expected[:1])


# Only the HTTP client can send and ask for tensors as JSON (the gRPC one always sends raw
# contents): these run over HTTP alone.
http_only = pytest.mark.parametrize("protocol", [Http], ids=["http"], indirect=True)


@http_only
def test_infer_with_json_tensors(protocol, rows, expected):
    outputs = [protocol.output(name, binary=False) for name, _ in OUTPUTS]
    result = infer(protocol, tensors(protocol, rows[:5], binary=False), outputs=outputs)
    assert_matches_v1(result, expected[:5])
    assert all("data" in output for output in result.get_response()["outputs"])
    assert not protocol.binary_outputs(result)


def test_infer_without_outputs_returns_all(protocol, rows, expected):
    result = infer(protocol, tensors(protocol, rows[:3]))
    assert protocol.answer(result).outputs == [name for name, _ in OUTPUTS]
    # Without `outputs`, tritonclient.http asks for them all as binary (binary_data_output).
    assert protocol.binary_outputs(result)
    assert_matches_v1(result, expected[:3])


def test_requested_outputs_are_selected_and_ordered(protocol, rows):
    outputs = [protocol.output("factors"), protocol.output("lead_score")]
    result = infer(protocol, tensors(protocol, rows[:2]), outputs=outputs)
    assert protocol.answer(result).outputs == ["factors", "lead_score"]


def test_id_is_echoed_with_the_model_version(protocol, rows):
    result = infer(protocol, tensors(protocol, rows[:1]), request_id="conformance-42")
    answer = protocol.answer(result)
    assert (answer.model_name, answer.model_version, answer.id) == (
        MODEL,
        VERSION,
        "conformance-42",
    )


def test_a_full_batch_equals_v1(protocol, rows, expected):
    result = infer(protocol, tensors(protocol, rows))
    assert_matches_v1(result, expected)


@pytest.mark.parametrize("datatype", ["FP32", "INT32", "INT64"])
def test_numbers_in_other_datatypes_score_the_same(protocol, rows, expected, datatype):
    # Integer tensors can only carry whole numbers: rows whose numbers all are.
    numbers = [name for name, kind in INPUTS if kind == "FP64"]
    picked = [i for i, row in enumerate(rows) if all(float(row[n]).is_integer() for n in numbers)]
    assert picked, "the rows hold whole numbers too"
    subset = [rows[i] for i in picked]
    inputs = []
    for name, kind in INPUTS:
        array = column(subset, name, kind)
        if kind == "FP64":
            kind, array = datatype, array.astype(triton_to_np_dtype(datatype))
        inputs.append(protocol.input(name, kind, array))
    assert_matches_v1(infer(protocol, inputs), [expected[i] for i in picked])


def test_inputs_shaped_n_by_1_score_the_same(protocol, rows, expected):
    inputs = [
        protocol.input(name, datatype, column(rows[:4], name, datatype).reshape(-1, 1))
        for name, datatype in INPUTS
    ]
    result = infer(protocol, inputs)
    assert result.as_numpy("lead_score").shape == (4,)
    assert_matches_v1(result, expected[:4])


def test_a_named_version_answers_and_an_unknown_one_is_not_found(protocol, rows):
    result = infer(protocol, tensors(protocol, rows[:1]), model_version=VERSION)
    assert protocol.answer(result).model_version == VERSION
    refused(
        protocol,
        lambda: infer(protocol, tensors(protocol, rows[:1]), model_version="9.9.9"),
        404,
        "NOT_FOUND",
    )


@http_only
def test_json_batch_equals_v1(protocol, rows, expected):
    outputs = [protocol.output(name, binary=False) for name, _ in OUTPUTS]
    result = infer(protocol, tensors(protocol, rows, binary=False), outputs=outputs)
    assert_matches_v1(result, expected)


def test_missing_inputs_are_treated_as_v1_treats_them(protocol, rows):
    # A missing number takes its default 0, a missing boolean false, a missing string its
    # encoder's fallback: for `title`, the value of a title naming no rank, such as "intern".
    row = rows[0]
    given = ["industry", "decision_timeline"]
    spelled_out = dict(row, title="intern")
    for name, datatype in INPUTS:
        if datatype == "FP64":
            spelled_out[name] = 0.0
        elif datatype == "BOOL":
            spelled_out[name] = False
    sparse = infer(
        protocol,
        [
            protocol.input(name, datatype, column([row], name, datatype))
            for name, datatype in INPUTS
            if name in given
        ],
    )
    full = infer(protocol, tensors(protocol, [spelled_out]))
    for name, _ in OUTPUTS:
        assert sparse.as_numpy(name).tolist() == full.as_numpy(name).tolist(), name


def test_a_batch_over_the_limit_is_refused(protocol, rows):
    too_many = rows + rows[:1]
    error = refused(
        protocol,
        lambda: infer(protocol, tensors(protocol, too_many)),
        400,
        "INVALID_ARGUMENT",
    )
    assert str(MAX_BATCH) in error.message()


def test_wrong_datatype_is_refused_naming_the_input(protocol, rows):
    inputs = tensors(protocol, rows[:1])
    inputs[0] = protocol.input("company_size", "BYTES", np.array([b"250"], dtype=np.object_))
    error = refused(protocol, lambda: infer(protocol, inputs), 400, "INVALID_ARGUMENT")
    assert "company_size" in error.message()


def test_inputs_of_different_lengths_are_refused(protocol, rows):
    inputs = tensors(protocol, rows[:1])
    inputs[0] = protocol.input("company_size", "FP64", column(rows[:2], "company_size", "FP64"))
    refused(protocol, lambda: infer(protocol, inputs), 400, "INVALID_ARGUMENT")


def test_unknown_input_is_refused_naming_it(protocol, rows):
    inputs = tensors(protocol, rows[:1]) + [protocol.input("shoe_size", "FP64", np.array([42.0]))]
    error = refused(protocol, lambda: infer(protocol, inputs), 400, "INVALID_ARGUMENT")
    assert "shoe_size" in error.message()


def test_unknown_model_is_not_found(protocol, rows):
    headers = protocol.auth(key())
    refused(
        protocol,
        lambda: protocol.client.infer(
            "no-such-model", tensors(protocol, rows[:1]), headers=headers
        ),
        404,
        "NOT_FOUND",
    )
    refused(
        protocol,
        lambda: protocol.model_metadata("no-such-model", headers),
        404,
        "NOT_FOUND",
    )


def test_missing_key_is_unauthenticated(protocol, rows):
    refused(
        protocol,
        lambda: protocol.client.infer(MODEL, tensors(protocol, rows[:1])),
        401,
        "UNAUTHENTICATED",
    )
    refused(protocol, lambda: protocol.server_metadata(None), 401, "UNAUTHENTICATED")


def test_invalid_key_is_unauthenticated(protocol, rows):
    refused(
        protocol,
        lambda: infer(protocol, tensors(protocol, rows[:1]), api_key="mg_not_a_real_key"),
        401,
        "UNAUTHENTICATED",
    )


def test_key_limited_to_another_model_is_denied(protocol, rows):
    limited = env("MODELGATE_LIMITED_KEY")
    refused(
        protocol,
        lambda: infer(protocol, tensors(protocol, rows[:1]), api_key=limited),
        403,
        "PERMISSION_DENIED",
    )
    refused(
        protocol,
        lambda: protocol.model_metadata(MODEL, protocol.auth(limited)),
        403,
        "PERMISSION_DENIED",
    )


def test_prepaid_key_without_credits_is_refused(protocol, rows):
    prepaid = env(f"MODELGATE_PREPAID_KEY_{protocol.name.upper()}")
    # Its one credit pays for the first prediction.
    infer(protocol, tensors(protocol, rows[:1]), api_key=prepaid)
    refused(
        protocol,
        lambda: infer(protocol, tensors(protocol, rows[:1]), api_key=prepaid),
        402,
        "RESOURCE_EXHAUSTED",
    )


def test_rate_limited_key_is_throttled(protocol, rows):
    throttled = env(f"MODELGATE_THROTTLED_KEY_{protocol.name.upper()}")
    # One prediction a minute: the first passes, the second comes too soon.
    infer(protocol, tensors(protocol, rows[:1]), api_key=throttled)
    refused(
        protocol,
        lambda: infer(protocol, tensors(protocol, rows[:1]), api_key=throttled),
        429,
        "RESOURCE_EXHAUSTED",
    )
