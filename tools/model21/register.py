#!/usr/bin/env python3
"""Register an ONNX graph as a new version of a model in an MLflow Model Registry.

Run with the interpreter of target/mlflow-venv (scripts/prepare builds it):

    target/mlflow-venv/bin/python tools/model21/register.py \
        --tracking-uri http://127.0.0.1:5000 --name model21 --onnx models/21/model.onnx \
        [--alias champion] [--stage Production]

The new version number is the last line on stdout; MLflow's own chatter goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True, help="MLflow tracking server URL")
    parser.add_argument("--name", required=True, help="registered model name")
    parser.add_argument("--onnx", required=True, help="path of the ONNX graph to register")
    parser.add_argument("--alias", help="alias to point at the new version")
    parser.add_argument(
        "--stage",
        help="stage to move the new version to (None, Staging, Production, Archived)",
    )
    return parser.parse_args(argv)


def register(args: argparse.Namespace) -> str:
    # Imported here so `--help` answers without the seconds MLflow takes to import.
    import mlflow
    import onnx
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(args.tracking_uri)
    client = MlflowClient(tracking_uri=args.tracking_uri)
    graph = onnx.load(args.onnx)
    with mlflow.start_run(run_name=f"register {args.name}"):
        info = mlflow.onnx.log_model(
            graph,
            name="model",
            registered_model_name=args.name,
            # One self-contained file, byte for byte what modelgate downloads and loads: the
            # default splits large tensors into side files that the MLmodel does not list.
            save_as_external_data=False,
        )
    version = str(info.registered_model_version)
    if args.alias:
        client.set_registered_model_alias(args.name, args.alias, version)
    if args.stage:
        # Stages are deprecated in MLflow 3 but still served; registries that predate aliases
        # use them.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            client.transition_model_version_stage(args.name, version, args.stage)
    return version


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # MLflow prints progress ("Registered model ...", emoji run links) on stdout; the caller
    # reads only the version, so everything before it goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        version = register(args)
    print(version, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
