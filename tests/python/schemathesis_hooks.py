"""Schemathesis hooks for tests/openapi_schemathesis.rs (loaded through SCHEMATHESIS_HOOKS)."""

import os

import schemathesis

# The key the run authenticates with. Schemathesis reuses ids it saw in answers, and
# `GET /api/v1/keys` lists this one: revoking it would turn the rest of the run into 401s.
OWN_KEY_ID = os.environ["MODELGATE_KEY_ID"]
# An id that names no key: revoking it answers 404, which the document describes.
NO_SUCH_KEY = "key_00000000000000000000000000000000"


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method.upper() == "DELETE" and (case.path_parameters or {}).get("id") == OWN_KEY_ID:
        case.path_parameters["id"] = NO_SUCH_KEY
