#!/usr/bin/env bash
# Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/ (git-ignored; libFuzzer adds what it
# finds there too). Everything is generated from the repository, so the seeds follow the formats:
#   blob_raw, blob_sealed  core/examples/fuzz_seeds.rs: small blobs in every weight format, every target, and a
#                          dynamically quantized one, through tickq-core's encoder
#   trades_csv             the first 300 lines of the bundled ticks
#   arch_toml              host/models/*.toml and seeds/safetensors-arch.toml
#   pipeline_config        host/pipelines/*.toml
#   safetensors            a checkpoint of seeds/safetensors-arch.toml trained by `tickq train` (weights and
#                          optimizer state), and the same pruned by `tickq prune` (weight_orig + weight_mask)
#   preprocess_json        that checkpoint's preprocess.json
# Needs the release `tickq` binary (`cargo build --release -p tickq-host`); run from anywhere.
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$fuzz")"
corpus="$fuzz/corpus"
tickq="$root/target/release/tickq"
cd "$root"
mkdir -p "$corpus"/{blob_raw,blob_sealed,trades_csv,arch_toml,pipeline_config,safetensors,preprocess_json}

cargo run -q -p tickq-core --release --features std,alloc --example fuzz_seeds -- "$corpus/blob_raw"
cp "$corpus"/blob_raw/*.blob "$corpus/blob_sealed/"

head -n 300 data/es-ticks-2013/ticks.csv >"$corpus/trades_csv/ticks-head.csv"
cp host/models/*.toml fuzz/seeds/safetensors-arch.toml "$corpus/arch_toml/"
cp host/pipelines/*.toml "$corpus/pipeline_config/"

if [ ! -x "$tickq" ]; then
    echo "fuzz/seeds.sh: $tickq is missing: cargo build --release -p tickq-host" >&2
    exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
head -n 20000 data/es-ticks-2013/ticks.csv >"$work/ticks.csv"
# Quiet unless a step fails: then its output explains why.
quiet() {
    "$@" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
}
quiet "$tickq" train --arch fuzz/seeds/safetensors-arch.toml --data "$work/ticks.csv" --time-steps 4 \
    --epochs 1 --seed 1 --device cpu --out "$work/trained"
quiet "$tickq" prune "$work/trained" --method unstructured --amount 0.5 --out "$work/pruned"
cp "$work/trained/model.safetensors" "$corpus/safetensors/trained.safetensors"
cp "$work/trained/train-state/train_state.safetensors" "$corpus/safetensors/train-state.safetensors"
cp "$work/pruned/model.safetensors" "$corpus/safetensors/pruned.safetensors"
cp "$work/trained/preprocess.json" "$corpus/preprocess_json/trained.json"
echo "seeds: $(find "$corpus" -type f | wc -l) files in $corpus"
