#!/usr/bin/env bash
# ONNX corpus benchmark (issue 14): per-row time of every corpus model (tests/fixtures/onnx-corpus)
# at batch 1 and 64 through modelgate's runtime (benches/onnx_corpus.rs, release build) and
# through onnxruntime (bench/onnx_corpus_ort.py, one thread), one after the other on this machine;
# and each tree model's cost per tree against Model 21's single-node forest.
# Usage: bench/onnx_corpus.sh [MODEL-SUBSTRING]
# Needs target/onnx-corpus-venv (tools/onnx-corpus/README.md).
# Writes bench/results/onnx-corpus-<UTC date>.json and prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/onnx-corpus-venv/bin
[ -x $venv/python ] || { echo "needs target/onnx-corpus-venv: see tools/onnx-corpus/README.md" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo bench --locked --bench onnx_corpus -- "$@" >"$work/modelgate.json"
$venv/python bench/onnx_corpus_ort.py "$@" >"$work/onnxruntime.json"
mkdir -p bench/results
out="bench/results/onnx-corpus-$(date -u +%Y-%m-%dT%H%M%SZ).json"
python3 bench/onnx_corpus_report.py "$work/modelgate.json" "$work/onnxruntime.json" "$out"
echo "wrote $out" >&2
