//! The bad-input corpus: one row per malformed input, through the `tickq` binary.
//!
//! Each row names a case, the files it writes into its own scratch directory, the `tickq` arguments, the exit
//! code it expects (2 for a bad input, which every row is unless it says otherwise) and the start of the
//! message: the `error:` line of stderr followed by its `  caused by:` lines, joined with `: ` (most rows give
//! the whole message). One harness runs every row, checks the exit
//! code, the line and that nothing panicked, and reports every row that failed at once, with the line it got.
//!
//! Placeholders in the arguments, in the file contents and in the expected line: `{in}` the row's first file,
//! `{dir}` its scratch directory, `{out}` a path there that does not exist, `{csv}` and `{arch}` the shared
//! fixtures (15,000 bundled trades and a tiny MLP), `{ckpt}`, `{blob}` and `{dyn}` a checkpoint trained once per
//! test binary and a static and a dynamic blob of it.
//!
//! Most rows fail before any work; the few that need a trained model share the one fixture checkpoint.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;

use common::{fixtures, mlp_arch, s, scratch, trained};

/// Where a row's file comes from.
#[derive(Clone, Copy)]
enum Src {
    /// Text, with the placeholders replaced.
    T(&'static str),
    /// Bytes made from the fixtures.
    G(fn(&Fix) -> Vec<u8>),
}

/// One bad input.
struct Case {
    /// A short name, unique in the table; also the name of the row's scratch directory.
    name: &'static str,
    /// Files to write into the scratch directory before the run; `{in}` is the first.
    files: &'static [(&'static str, Src)],
    /// The `tickq` arguments, split at whitespace after the placeholders are replaced.
    args: &'static str,
    /// Extra environment variables.
    env: &'static [(&'static str, &'static str)],
    /// The expected exit code.
    code: i32,
    /// The start of the first `error:` line of stderr.
    first: &'static str,
}

const ROW: Case = Case {
    name: "",
    files: &[],
    args: "",
    env: &[],
    code: 2,
    first: "",
};

/// The shared fixtures.
struct Fix {
    csv: PathBuf,
    arch: PathBuf,
}

impl Fix {
    /// The bytes of the static blob of the checkpoint trained once.
    fn blob_bytes(&self) -> Vec<u8> {
        std::fs::read(&trained().blob).unwrap()
    }
}

/// The blob with its CRC recomputed, so the loader gets past the CRC check to the field that was changed.
fn reseal(mut b: Vec<u8>) -> Vec<u8> {
    let crc = tickq_core::format::compute_crc(&b);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    b
}

/// `n` bytes of a fixed xorshift sequence.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An MLP on the fixture's 29 features: `hidden` dense layers of `units`, each followed by ReLU, then 3 classes.
fn mlp(hidden: &[usize]) -> Vec<u8> {
    mlp_arch(hidden).into_bytes()
}

/// The fixture CSV's header and first rows, then `tail`.
fn csv_with(tail: &str) -> Vec<u8> {
    format!("DateTime,Price,Volume\n2013-09-01 17:00:00.083,1640.25,8\n2013-09-01 17:00:00.100,1640.50,2\n{tail}")
        .into_bytes()
}

/// The architecture header every small architecture row starts from.
macro_rules! head {
    () => {
        "name = \"a\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = 29\n"
    };
}

/// The last layer of a small architecture.
macro_rules! logits {
    () => {
        "[[layers]]\ntype = \"dense\"\nout = 3\n"
    };
}

/// The start of a pipeline config: the fixture CSV and a one-epoch train stage `t`.
macro_rules! pt {
    () => {
        "[data]\ncsv = \"{csv}\"\n[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\nepochs = 1\n"
    };
}

/// A quantize stage `q` from `t`.
macro_rules! pq {
    () => {
        "[[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"t\"\n"
    };
}

/// `tickq train` on the fixtures, writing nowhere that exists.
macro_rules! tr {
    () => {
        "train --arch {arch} --data {csv} --out {out} --device cpu "
    };
}

/// `tickq train` on the fixture architecture and the row's CSV.
macro_rules! tcsv {
    () => {
        "train --arch {arch} --data {in} --out {out} --device cpu"
    };
}

/// `tickq train` on the row's architecture and the fixture CSV.
macro_rules! tarch {
    () => {
        "train --arch {in} --data {csv} --out {out} --device cpu"
    };
}

/// `tickq pipeline` on the row's config.
macro_rules! pipe {
    () => {
        "pipeline {in} --out {out} --device cpu"
    };
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // ---- numeric options of every subcommand (clap value parsers: exit 2, the range in the message) ----
    Case { name: "train-epochs-negative", args: concat!(tr!(), "--epochs -5"), code: 2, first: "error: invalid value '-5' for '--epochs <N>': -5 is out of range: expected a whole number from 1 to 1000000", ..ROW },
    Case { name: "train-epochs-zero", args: concat!(tr!(), "--epochs 0"), code: 2, first: "error: invalid value '0' for '--epochs <N>': 0 is out of range: expected a whole number from 1 to 1000000", ..ROW },
    Case { name: "train-epochs-word", args: concat!(tr!(), "--epochs many"), code: 2, first: "error: invalid value 'many' for '--epochs <N>': `many` is not a whole number from 1 to 1000000", ..ROW },
    Case { name: "train-epochs-fraction", args: concat!(tr!(), "--epochs 2.5"), code: 2, first: "error: invalid value '2.5' for '--epochs <N>': `2.5` is not a whole number from 1 to 1000000", ..ROW },
    Case { name: "train-epochs-huge", args: concat!(tr!(), "--epochs 1e12"), code: 2, first: "error: invalid value '1e12' for '--epochs <N>': 1000000000000 is out of range: expected a whole number from 1 to 1000000", ..ROW },
    Case { name: "train-horizon-negative", args: concat!(tr!(), "--horizon -5"), code: 2, first: "error: invalid value '-5' for '--horizon <TRADES>': -5 is out of range: expected a whole number from 1 to 1000000000", ..ROW },
    Case { name: "train-horizon-zero", args: concat!(tr!(), "--horizon 0"), code: 2, first: "error: invalid value '0' for '--horizon <TRADES>': 0 is out of range: expected a whole number from 1 to 1000000000", ..ROW },
    Case { name: "train-dead-band-negative", args: concat!(tr!(), "--dead-band -5"), code: 2, first: "error: invalid value '-5' for '--dead-band <PRICE>': -5 is out of range: expected a finite number >= 0", ..ROW },
    Case { name: "train-dead-band-nan", args: concat!(tr!(), "--dead-band nan"), code: 2, first: "error: invalid value 'nan' for '--dead-band <PRICE>': NaN is out of range: expected a finite number >= 0", ..ROW },
    Case { name: "train-time-steps-zero", args: concat!(tr!(), "--time-steps 0"), code: 2, first: "error: invalid value '0' for '--time-steps <T>': 0 is out of range: expected a whole number from 1 to 65535", ..ROW },
    Case { name: "train-time-steps-above-format", args: concat!(tr!(), "--time-steps 70000"), code: 2, first: "error: invalid value '70000' for '--time-steps <T>': 70000 is out of range: expected a whole number from 1 to 65535", ..ROW },
    Case { name: "train-lr-negative", args: concat!(tr!(), "--lr -5"), code: 2, first: "error: invalid value '-5' for '--lr <LR>': -5 is out of range: expected a finite number > 0", ..ROW },
    Case { name: "train-lr-zero", args: concat!(tr!(), "--lr 0"), code: 2, first: "error: invalid value '0' for '--lr <LR>': 0 is out of range: expected a finite number > 0", ..ROW },
    Case { name: "train-lr-inf", args: concat!(tr!(), "--lr inf"), code: 2, first: "error: invalid value 'inf' for '--lr <LR>': inf is out of range: expected a finite number > 0", ..ROW },
    Case { name: "train-patience-negative", args: concat!(tr!(), "--patience -5"), code: 2, first: "error: invalid value '-5' for '--patience <EPOCHS>': -5 is out of range: expected a whole number from 0 to 1000000", ..ROW },
    Case { name: "train-batch-size-zero", args: concat!(tr!(), "--batch-size 0"), code: 2, first: "error: invalid value '0' for '--batch-size <N>': 0 is out of range: expected a whole number from 1 to 16777216", ..ROW },
    Case { name: "train-batch-size-huge", args: concat!(tr!(), "--batch-size 1e9"), code: 2, first: "error: invalid value '1e9' for '--batch-size <N>': 1000000000 is out of range: expected a whole number from 1 to 16777216", ..ROW },
    Case { name: "train-seed-negative", args: concat!(tr!(), "--seed -1"), code: 2, first: "error: invalid value '-1' for '--seed <SEED>': -1 is out of range: expected a whole number of at least 0", ..ROW },
    Case { name: "train-momentum-two", args: concat!(tr!(), "--optimizer sgd --momentum 2"), code: 2, first: "error: invalid value '2' for '--momentum <MOMENTUM>': 2 is out of range: expected a number in [0, 1)", ..ROW },
    Case { name: "train-momentum-one", args: concat!(tr!(), "--optimizer sgd --momentum 1"), code: 2, first: "error: invalid value '1' for '--momentum <MOMENTUM>': 1 is out of range: expected a number in [0, 1)", ..ROW },
    Case { name: "train-momentum-negative", args: concat!(tr!(), "--optimizer sgd --momentum -0.1"), code: 2, first: "error: invalid value '-0.1' for '--momentum <MOMENTUM>': -0.1 is out of range: expected a number in [0, 1)", ..ROW },
    Case { name: "train-momentum-without-sgd", args: concat!(tr!(), "--momentum 0.5"), first: "error: field `momentum`: only optimizer = sgd uses it (this run has optimizer = adam)", ..ROW },
    Case { name: "train-optimizer-unknown", args: concat!(tr!(), "--optimizer rmsprop"), code: 2, first: "error: invalid value 'rmsprop' for '--optimizer <OPTIMIZER>'", ..ROW },
    Case { name: "train-device-unknown", args: "train --arch {arch} --data {csv} --out {out} --device tpu", code: 2, first: "error: invalid value 'tpu' for '--device <DEVICE>'", ..ROW },
    Case { name: "bench-calls-huge", args: "bench {blob} --calls 1000000000000", code: 2, first: "error: invalid value '1000000000000' for '--calls <N>': 1000000000000 is out of range: expected a whole number from 1 to 10000000", ..ROW },
    Case { name: "bench-calls-scientific", args: "bench {blob} --calls 1e12", code: 2, first: "error: invalid value '1e12' for '--calls <N>': 1000000000000 is out of range: expected a whole number from 1 to 10000000", ..ROW },
    Case { name: "bench-calls-zero", args: "bench {blob} --calls 0", code: 2, first: "error: invalid value '0' for '--calls <N>': 0 is out of range: expected a whole number from 1 to 10000000", ..ROW },
    Case { name: "bench-calls-negative", args: "bench {blob} --calls -1", code: 2, first: "error: invalid value '-1' for '--calls <N>': -1 is out of range: expected a whole number from 1 to 10000000", ..ROW },
    Case { name: "bench-backend-unknown", args: "bench {blob} --backend quantum", code: 2, first: "error: invalid value 'quantum' for '--backend <NAME>': unknown backend: use generic, sse2, avx2, avx512-vnni, neon or neon-dot", ..ROW },
    Case { name: "eval-latency-calls-huge", args: "eval {ckpt} --blob {blob} --out {out} --latency-calls 1e12", code: 2, first: "error: invalid value '1e12' for '--latency-calls <N>': 1000000000000 is out of range: expected a whole number from 1 to 10000000", ..ROW },
    Case { name: "eval-latency-calls-zero", args: "eval {ckpt} --blob {blob} --out {out} --latency-calls 0", code: 2, first: "error: invalid value '0' for '--latency-calls <N>': 0 is out of range: expected a whole number from 1 to 10000000", ..ROW },
    Case { name: "export-vectors-negative", args: "export {blob} --format blob --out {out} --vectors -1", code: 2, first: "error: invalid value '-1' for '--vectors <N>': -1 is out of range: expected a whole number from 0 to 4294967295", ..ROW },
    Case { name: "export-vectors-above-format", args: "export {blob} --format blob --out {out} --vectors 1e10", code: 2, first: "error: invalid value '1e10' for '--vectors <N>': 10000000000 is out of range: expected a whole number from 0 to 4294967295", ..ROW },
    Case { name: "export-format-unknown", args: "export {blob} --format elf --out {out}", code: 2, first: "error: invalid value 'elf' for '--format <FORMAT>'", ..ROW },
    Case { name: "quantize-percentile-low", args: "quantize {ckpt} --out {out} --percentile 20", code: 2, first: "error: invalid value '20' for '--percentile <PERCENTILE>': 20 is out of range: expected a number in [50, 100]", ..ROW },
    Case { name: "quantize-percentile-high", args: "quantize {ckpt} --out {out} --percentile 101", code: 2, first: "error: invalid value '101' for '--percentile <PERCENTILE>': 101 is out of range: expected a number in [50, 100]", ..ROW },
    Case { name: "quantize-averaging-zero", args: "quantize {ckpt} --out {out} --averaging-constant 0", code: 2, first: "error: invalid value '0' for '--averaging-constant <AVERAGING_CONSTANT>': 0 is out of range: expected a number in (0, 1]", ..ROW },
    Case { name: "quantize-averaging-high", args: "quantize {ckpt} --out {out} --averaging-constant 1.5", code: 2, first: "error: invalid value '1.5' for '--averaging-constant <AVERAGING_CONSTANT>': 1.5 is out of range: expected a number in (0, 1]", ..ROW },
    Case { name: "quantize-calibration-count-zero", files: &[("c.csv", Src::T("a\n1\n"))], args: "quantize {ckpt} --out {out} --calibration {in} --calibration-count 0", code: 2, first: "error: invalid value '0' for '--calibration-count <N>': 0 is out of range: expected a whole number from 1 to 4294967295", ..ROW },
    Case { name: "quantize-calibration-rows-empty", files: &[("c.csv", Src::T("a\n1\n"))], args: "quantize {ckpt} --out {out} --calibration {in} --calibration-rows 5..2", code: 2, first: "error: invalid value '5..2' for '--calibration-rows <START..END>': 5..2 is empty: START must be below END", ..ROW },
    Case { name: "quantize-calibration-width", files: &[("c.csv", Src::T("a,b\n1,2\n"))], args: "quantize {ckpt} --out {out} --calibration {in}", code: 2, first: "error: {in}: 2 input columns, but the model takes 29 inputs", ..ROW },
    Case { name: "quantize-calibration-nan", files: &[("c.csv", Src::G(|_| { let names: Vec<String> = (0..29).map(|i| format!("c{i}")).collect(); let mut row = vec!["0"; 29]; row[3] = "NaN"; format!("{}\n{}\n", names.join(","), row.join(",")).into_bytes() }))], args: "quantize {ckpt} --out {out} --calibration {in}", code: 2, first: "error: {in}: row 0, column 3 (", ..ROW },
    Case { name: "quantize-calibration-rows-past", files: &[("c.csv", Src::G(|_| { let names: Vec<String> = (0..29).map(|i| format!("c{i}")).collect(); format!("{}\n{}\n", names.join(","), vec!["0"; 29].join(",")).into_bytes() }))], args: "quantize {ckpt} --out {out} --calibration {in} --calibration-rows 0..5", code: 2, first: "error: {in}: rows 0..5 asked for, but the file has 1 rows", ..ROW },
    Case { name: "run-no-inputs", args: "run {blob}", code: 2, first: "error: tickq run reads vectors from files: give them with --inputs FILE", ..ROW },
    Case { name: "run-unknown-format", files: &[("x.txt", Src::T("1\n"))], args: "run {blob} --inputs {in}", code: 2, first: "error: {in}: unknown input format: the name must end in .npy, .safetensors, .csv or .parquet", ..ROW },
    Case { name: "run-npy-garbage", files: &[("x.npy", Src::T("not numpy at all"))], args: "run {blob} --inputs {in}", code: 2, first: "error: {in}: not a valid .npy file: it does not start with the magic \\x93NUMPY", ..ROW },
    Case { name: "run-layout-unknown", args: "run {blob} --inputs {csv} --layout sideways", code: 2, first: "error: invalid value 'sideways' for '--layout <LAYOUT>': `sideways` is not a layout: time-major or channels-first", ..ROW },
    Case { name: "import-names-width", args: "import --weights {ckpt}/model.safetensors --arch {ckpt}/arch.toml --out {out} --input-names a,b", code: 2, first: "error: --input-names gives 2 names, but the architecture takes 29 features per time step", ..ROW },
    Case { name: "import-layout-with-preprocess", args: "import --weights {ckpt}/model.safetensors --arch {ckpt}/arch.toml --out {out} --preprocess {ckpt}/preprocess.json --layout time-major", code: 2, first: "error: the argument '--preprocess <FILE>' cannot be used with", ..ROW },
    Case { name: "quantize-calibration-zero", args: "quantize {ckpt} --out {out} --calibration-samples 0", code: 2, first: "error: invalid value '0' for '--calibration-samples <N>': 0 is out of range: expected a whole number from 1 to 4294967295", ..ROW },
    Case { name: "quantize-calibration-negative", args: "quantize {ckpt} --out {out} --calibration-samples -3", code: 2, first: "error: invalid value '-3' for '--calibration-samples <N>': -3 is out of range: expected a whole number from 1 to 4294967295", ..ROW },
    Case { name: "quantize-observer-unknown", args: "quantize {ckpt} --out {out} --observer median", first: "error: invalid value 'median' for '--observer <OBSERVER>'", ..ROW },
    Case { name: "quantize-mode-unknown", args: "quantize {ckpt} --out {out} --mode fast", code: 2, first: "error: invalid value 'fast' for '--mode <MODE>'", ..ROW },
    Case { name: "quantize-backend-unknown", args: "quantize {ckpt} --out {out} --backend tpu", first: "error: invalid value 'tpu' for '--backend <BACKEND>'", ..ROW },
    Case { name: "quantize-dtype-unknown", args: "quantize {ckpt} --out {out} --dtype int4", first: "error: invalid value 'int4' for '--dtype <DTYPE>'", ..ROW },
    Case { name: "quantize-weight-format-unknown", args: "quantize {ckpt} --out {out} --weight-format zip", code: 2, first: "error: invalid value 'zip' for '--weight-format <auto|dense|smallest|blocked|dense-dot|dense-dsp|sparse|columns|packed|nm>': unknown weight format: use auto, dense, smallest, blocked, dense-dot, dense-dsp, sparse, columns, packed or nm", ..ROW },
    Case { name: "quantize-target-unknown", args: "quantize {ckpt} --out {out} --target z80", code: 2, first: "error: invalid value 'z80' for '--target <x86-64-v4|x86-64-v3|x86-64|aarch64|cortex-m4|cortex-m0|riscv32>': unknown target: use x86-64-v4, x86-64-v3, x86-64, aarch64, cortex-m4, cortex-m0 or riscv32", ..ROW },
    Case { name: "quant-config-syntax", files: &[("q.toml", Src::T("observer = \"minmax\nbackend = 1\n"))], args: "quantize {ckpt} --out {out} --quant-config {in}", first: "error: quantization config: {in}: TOML parse error at line 1, column 19: invalid basic string, expected `\"`", ..ROW },
    Case { name: "quant-config-unknown-key", files: &[("q.toml", Src::T("observer = \"minmax\"\nbits = 4\n"))], args: "quantize {ckpt} --out {out} --quant-config {in}", first: "error: quantization config: {in}: TOML parse error at line 2, column 1: unknown field `bits`, expected one of `backend`, `dtype`, `reduce_range`, `observer`, `percentile`, `averaging_constant`, `calibration_samples`", ..ROW },
    Case { name: "quant-config-percentile", files: &[("q.toml", Src::T("observer = \"percentile\"\npercentile = 120.0\n"))], args: "quantize {ckpt} --out {out} --quant-config {in}", first: "error: quantization config: {in}: field `percentile`: 120 is out of range: expected a number in [50, 100]", ..ROW },
    Case { name: "quant-config-calibration-zero", files: &[("q.toml", Src::T("calibration_samples = 0\n"))], args: "quantize {ckpt} --out {out} --quant-config {in}", first: "error: quantization config: {in}: field `calibration_samples`: 0 is out of range: expected a whole number from 1 to 4294967295", ..ROW },
    Case { name: "quant-config-dev-zero", args: "quantize {ckpt} --out {out} --quant-config /dev/zero", first: "error: quantization config: /dev/zero: larger than 1048576 bytes, the most tickq reads from a config file", ..ROW },
    Case { name: "quant-config-missing", args: "quantize {ckpt} --out {out} --quant-config {dir}/none.toml", first: "error: quantization config: {dir}/none.toml: No such file or directory (os error 2)", ..ROW },
    Case { name: "prune-amount-one", args: "prune {ckpt} --method global --amount 1 --out {out}", code: 2, first: "error: invalid value '1' for '--amount <AMOUNT>': 1 is out of range: expected a number in [0, 1)", ..ROW },
    Case { name: "prune-amount-negative", args: "prune {ckpt} --method global --amount -0.1 --out {out}", code: 2, first: "error: invalid value '-0.1' for '--amount <AMOUNT>': -0.1 is out of range: expected a number in [0, 1)", ..ROW },
    Case { name: "prune-amount-missing", args: "prune {ckpt} --method global --out {out}", code: 2, first: "error: the following required arguments were not provided:", ..ROW },
    Case { name: "prune-steps-huge", args: "prune {ckpt} --method global --amount 0.5 --schedule gradual --steps 1e12 --out {out}", code: 2, first: "error: invalid value '1e12' for '--steps <STEPS>': 1000000000000 is out of range: expected a whole number from 1 to 1000", ..ROW },
    Case { name: "prune-steps-zero", args: "prune {ckpt} --method global --amount 0.5 --schedule gradual --steps 0 --out {out}", code: 2, first: "error: invalid value '0' for '--steps <STEPS>': 0 is out of range: expected a whole number from 1 to 1000", ..ROW },
    Case { name: "prune-dim-two", args: "prune {ckpt} --method structured --amount 0.5 --dim 2 --out {out}", code: 2, first: "error: invalid value '2' for '--dim <DIM>': 2 is out of range: expected a whole number from 0 to 1", ..ROW },
    Case { name: "prune-n-zero", args: "prune {ckpt} --method nm --n 0 --out {out}", code: 2, first: "error: invalid value '0' for '--n <N>': 0 is out of range: expected a whole number from 1 to 65535", ..ROW },
    Case { name: "prune-m-above-format", args: "prune {ckpt} --method nm --m 70000 --out {out}", code: 2, first: "error: invalid value '70000' for '--m <M>': 70000 is out of range: expected a whole number from 1 to 65535", ..ROW },
    Case { name: "prune-n-above-m", args: "prune {ckpt} --method nm --n 5 --m 4 --out {out}", first: "error: fields `n`, `m`: n = 5 is above m = 4; N:M keeps n of every m weights", ..ROW },
    Case { name: "prune-initial-one", args: "prune {ckpt} --method global --amount 0.5 --schedule gradual --initial 1 --out {out}", code: 2, first: "error: invalid value '1' for '--initial <INITIAL>': 1 is out of range: expected a number in [0, 1)", ..ROW },
    Case { name: "prune-fine-tune-negative", args: "prune {ckpt} --method global --amount 0.5 --fine-tune-epochs -1 --out {out}", code: 2, first: "error: invalid value '-1' for '--fine-tune-epochs <E>': -1 is out of range: expected a whole number from 0 to 1000000", ..ROW },
    Case { name: "prune-lr-zero", args: "prune {ckpt} --method global --amount 0.5 --lr 0 --out {out}", code: 2, first: "error: invalid value '0' for '--lr <LR>': 0 is out of range: expected a finite number > 0", ..ROW },
    Case { name: "prune-batch-size-zero", args: "prune {ckpt} --method global --amount 0.5 --batch-size 0 --out {out}", code: 2, first: "error: invalid value '0' for '--batch-size <N>': 0 is out of range: expected a whole number from 1 to 16777216", ..ROW },
    Case { name: "prune-norm-unknown", args: "prune {ckpt} --method structured --amount 0.5 --norm 3 --out {out}", code: 2, first: "error: invalid value '3' for '--norm <NORM>': unknown norm `3`, expected 1, 2 or inf", ..ROW },
    Case { name: "distill-alpha-two", args: "distill --teacher {ckpt} --student {arch} --out {out} --alpha 2", code: 2, first: "error: invalid value '2' for '--alpha <ALPHA>': 2 is out of range: expected a number in [0, 1]", ..ROW },
    Case { name: "distill-temperature-zero", args: "distill --teacher {ckpt} --student {arch} --out {out} --temperature 0", code: 2, first: "error: invalid value '0' for '--temperature <TEMPERATURE>': 0 is out of range: expected a finite number > 0", ..ROW },
    Case { name: "distill-temperature-negative", args: "distill --teacher {ckpt} --student {arch} --out {out} --temperature -1", code: 2, first: "error: invalid value '-1' for '--temperature <TEMPERATURE>': -1 is out of range: expected a finite number > 0", ..ROW },
    Case { name: "distill-epochs-zero", args: "distill --teacher {ckpt} --student {arch} --out {out} --epochs 0", code: 2, first: "error: invalid value '0' for '--epochs <N>': 0 is out of range: expected a whole number from 1 to 1000000", ..ROW },
    Case { name: "distill-lr-negative", args: "distill --teacher {ckpt} --student {arch} --out {out} --lr -1", code: 2, first: "error: invalid value '-1' for '--lr <LR>': -1 is out of range: expected a finite number > 0", ..ROW },
    Case { name: "distill-momentum-two", args: "distill --teacher {ckpt} --student {arch} --out {out} --optimizer sgd --momentum 2", code: 2, first: "error: invalid value '2' for '--momentum <MOMENTUM>': 2 is out of range: expected a number in [0, 1)", ..ROW },
    Case { name: "distill-patience-negative", args: "distill --teacher {ckpt} --student {arch} --out {out} --patience -1", code: 2, first: "error: invalid value '-1' for '--patience <EPOCHS>': -1 is out of range: expected a whole number from 0 to 1000000", ..ROW },
    Case { name: "distill-batch-size-zero", args: "distill --teacher {ckpt} --student {arch} --out {out} --batch-size 0", code: 2, first: "error: invalid value '0' for '--batch-size <N>': 0 is out of range: expected a whole number from 1 to 16777216", ..ROW },
    Case { name: "distill-seed-fraction", args: "distill --teacher {ckpt} --student {arch} --out {out} --seed 1.5", code: 2, first: "error: invalid value '1.5' for '--seed <SEED>': `1.5` is not a whole number of at least 0", ..ROW },
    Case { name: "sensitivity-calibration-zero", args: "sensitivity {ckpt} --calibration-samples 0", code: 2, first: "error: invalid value '0' for '--calibration-samples <N>': 0 is out of range: expected a whole number from 1 to 4294967295", ..ROW },
    Case { name: "sensitivity-averaging-zero", args: "sensitivity {ckpt} --averaging-constant 0", code: 2, first: "error: invalid value '0' for '--averaging-constant <AVERAGING_CONSTANT>': 0 is out of range: expected a number in (0, 1]", ..ROW },
    Case { name: "eval-latency-calls-negative", args: "eval {ckpt} --blob {blob} --out {out} --latency-calls -5", code: 2, first: "error: invalid value '-5' for '--latency-calls <N>': -5 is out of range: expected a whole number from 1 to 10000000", ..ROW },
    Case { name: "export-vectors-fraction", args: "export {blob} --format blob --out {out} --vectors 2.5", code: 2, first: "error: invalid value '2.5' for '--vectors <N>': `2.5` is not a whole number from 0 to 4294967295", ..ROW },
    Case { name: "sensitivity-amount-one", args: "sensitivity {ckpt} --mode prune --amount 1", code: 2, first: "error: invalid value '1' for '--amount <AMOUNT>': 1 is out of range: expected a number in [0, 1)", ..ROW },
    Case { name: "sensitivity-percentile-low", args: "sensitivity {ckpt} --percentile 20", code: 2, first: "error: invalid value '20' for '--percentile <PERCENTILE>': 20 is out of range: expected a number in [50, 100]", ..ROW },
    Case { name: "unknown-subcommand", args: "serve {blob}", code: 2, first: "error: unrecognized subcommand 'serve'", ..ROW },

    // ---- architecture files: every field wrong, every limit, syntax ----
    Case { name: "arch-units-above-format", files: &[("a.toml", Src::G(|_| mlp(&[4_000_000])))], args: tarch!(), first: "error: {in}: layer 0 (dense \"fc1\"): out 4000000 is above 65535, the most the blob format's 16-bit out field holds", ..ROW },
    Case { name: "arch-billions-of-weights", files: &[("a.toml", Src::G(|_| mlp(&[60_000, 60_000])))], args: tarch!(), first: "error: {in}: layer 2 (dense \"fc2\"): 3600060000 parameters (60000 x 60000 weights + 60000 biases), above 16777216, the most a layer may have", ..ROW },
    Case { name: "arch-parameters-in-all", files: &[("a.toml", Src::G(|_| mlp(&[4000; 4])))], args: tarch!(), first: "error: {in}: architecture: 48144003 parameters in all, above 33554432, the most a model may have", ..ROW },
    Case { name: "arch-201-layers", files: &[("a.toml", Src::G(|_| mlp(&[8; 100])))], args: tarch!(), first: "error: {in}: architecture: its 201 layers make 102 blob layers (the input quantizer counts as one; a relu, relu6 or clamp right after dense or conv1d is fused into it), above 32, the most a tickq-core blob holds", ..ROW },
    Case { name: "arch-33-blob-layers", files: &[("a.toml", Src::G(|_| mlp(&[8; 31])))], args: tarch!(), first: "error: {in}: architecture: its 63 layers make 33 blob layers (the input quantizer counts as one; a relu, relu6 or clamp right after dense or conv1d is fused into it), above 32, the most a tickq-core blob holds", ..ROW },
    Case { name: "arch-classes-300", files: &[("a.toml", Src::T("name = \"c\"\nclasses = 300\n[input]\ntime_steps = 1\nfeatures = 29\n[[layers]]\ntype = \"dense\"\nout = 300\n"))], args: tarch!(), first: "error: {in}: architecture: classes must be from 2 to 256 (the most tickq-core predicts), got 300", ..ROW },
    Case { name: "arch-classes-one", files: &[("a.toml", Src::T("name = \"c\"\nclasses = 1\n[input]\ntime_steps = 1\nfeatures = 29\n[[layers]]\ntype = \"dense\"\nout = 1\n"))], args: tarch!(), first: "error: {in}: architecture: classes must be from 2 to 256 (the most tickq-core predicts), got 1", ..ROW },
    Case { name: "arch-classes-negative", files: &[("a.toml", Src::T("name = \"c\"\nclasses = -3\n[input]\ntime_steps = 1\nfeatures = 29\n[[layers]]\ntype = \"dense\"\nout = 3\n"))], args: tarch!(), first: "error: {in}: TOML parse error at line 2, column 11: invalid value: integer `-3`, expected usize", ..ROW },
    Case { name: "arch-name-10-mb", files: &[("a.toml", Src::G(|_| format!("name = \"{}\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = 29\n[[layers]]\ntype = \"dense\"\nout = 3\n", "n".repeat(500_000)).into_bytes()))], args: tarch!(), first: "error: {in}: architecture: name \"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn… (500000 bytes)\" is 500000 bytes long, above 128, the most a model name may have", ..ROW },
    Case { name: "arch-name-nul", files: &[("a.toml", Src::T(concat!("name = \"a\\u0000b\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = 29\n", logits!())))], args: tarch!(), first: "error: {in}: architecture: name \"a\\0b\" has a control character; use printable characters", ..ROW },
    Case { name: "arch-name-empty", files: &[("a.toml", Src::T(concat!("name = \"\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = 29\n", logits!())))], args: tarch!(), first: "error: {in}: architecture: name must not be empty", ..ROW },
    Case { name: "arch-name-missing", files: &[("a.toml", Src::T(concat!("classes = 3\n[input]\ntime_steps = 1\nfeatures = 29\n", logits!())))], args: tarch!(), first: "error: {in}: TOML parse error at line 1, column 1: missing field `name`", ..ROW },
    Case { name: "arch-layer-name-long", files: &[("a.toml", Src::G(|_| format!(concat!(head!(), "[[layers]]\ntype = \"dense\"\nout = 3\nname = \"{}\"\n"), "l".repeat(200)).into_bytes()))], args: tarch!(), first: "error: {in}: layer 0 (dense \"llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll… (200 bytes)\"): name \"llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll… (200 bytes)\" is 200 bytes long, above 128, the most a layer name may have", ..ROW },
    Case { name: "arch-layer-name-chars", files: &[("a.toml", Src::T(concat!(head!(), "[[layers]]\ntype = \"dense\"\nout = 3\nname = \"fc 1\"\n")))], args: tarch!(), first: "error: {in}: layer 0 (dense \"fc 1\"): name \"fc 1\" must be non-empty ASCII letters, digits, '_' and inner single '.'", ..ROW },
    Case { name: "arch-layer-name-duplicate", files: &[("a.toml", Src::T(concat!(head!(), "[[layers]]\ntype = \"dense\"\nout = 8\nname = \"fc\"\n[[layers]]\ntype = \"dense\"\nout = 3\nname = \"fc\"\n")))], args: tarch!(), first: "error: {in}: layer 1 (dense \"fc\"): name \"fc\" is already used by layer 0", ..ROW },
    Case { name: "arch-unknown-key", files: &[("a.toml", Src::T(concat!(head!(), "colour = \"red\"\n", logits!())))], args: tarch!(), first: "error: {in}: TOML parse error at line 6, column 1: unknown field `colour`, expected `time_steps` or `features`", ..ROW },
    Case { name: "arch-unknown-layer-key", files: &[("a.toml", Src::T(concat!(head!(), "[[layers]]\ntype = \"dense\"\nout = 3\nunits = 3\n")))], args: tarch!(), first: "error: {in}: TOML parse error at line 9, column 1: unknown field `units`, expected one of `type`, `name`, `out`, `kernel`, `stride`, `dilation`, `padding`, `min`, `max`", ..ROW },
    Case { name: "arch-unknown-layer-type", files: &[("a.toml", Src::T(concat!(head!(), "[[layers]]\ntype = \"lstm\"\nout = 3\n")))], args: tarch!(), first: "error: {in}: TOML parse error at line 6, column 1: unknown layer type `lstm`, expected one of dense, conv1d, relu, relu6, clamp, tanh, sigmoid, maxpool1d, avgpool1d, global_avg_pool, flatten", ..ROW },
    Case { name: "arch-missing-input", files: &[("a.toml", Src::T(concat!("name = \"a\"\nclasses = 3\n", logits!())))], args: tarch!(), first: "error: {in}: TOML parse error at line 1, column 1: missing field `input`", ..ROW },
    Case { name: "arch-features-zero", files: &[("a.toml", Src::T(concat!("name = \"a\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = 0\n", logits!())))], args: tarch!(), first: "error: {in}: architecture: input time_steps and features must be at least 1, got 1 and 0", ..ROW },
    Case { name: "arch-features-above-format", files: &[("a.toml", Src::T(concat!("name = \"a\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = 70000\n", logits!())))], args: tarch!(), first: "error: {in}: architecture: input features 70000 is above 65535, the most the blob format's 16-bit size fields hold", ..ROW },
    Case { name: "arch-time-steps-zero", files: &[("a.toml", Src::T(concat!("name = \"a\"\nclasses = 3\n[input]\ntime_steps = 0\nfeatures = 29\n", logits!())))], args: tarch!(), first: "error: {in}: architecture: input time_steps and features must be at least 1, got 0 and 29", ..ROW },
    Case { name: "arch-features-mismatch-data", files: &[("a.toml", Src::T(concat!("name = \"a\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = 12\n", logits!())))], args: tarch!(), first: "error: architecture `a` takes 12 features x 1 time steps, the data gives 29 x 1", ..ROW },
    Case { name: "arch-out-zero", files: &[("a.toml", Src::T(concat!(head!(), "[[layers]]\ntype = \"dense\"\nout = 0\n", logits!())))], args: tarch!(), first: "error: {in}: layer 0 (dense \"fc1\"): out must be at least 1", ..ROW },
    Case { name: "arch-out-string", files: &[("a.toml", Src::T(concat!(head!(), "[[layers]]\ntype = \"dense\"\nout = \"three\"\n")))], args: tarch!(), first: "error: {in}: TOML parse error at line 8, column 7: invalid type: string \"three\", expected usize", ..ROW },
    Case { name: "arch-out-missing", files: &[("a.toml", Src::T(concat!(head!(), "[[layers]]\ntype = \"dense\"\n")))], args: tarch!(), first: "error: {in}: TOML parse error at line 6, column 1: layer type `dense` needs field `out`", ..ROW },
    Case { name: "arch-last-not-classes", files: &[("a.toml", Src::T(concat!(head!(), "[[layers]]\ntype = \"dense\"\nout = 4\n")))], args: tarch!(), first: "error: {in}: layer 0 (dense \"fc1\"): the last layer outputs 4 values but the model has 3 classes", ..ROW },
    Case { name: "arch-layers-not-a-list", files: &[("a.toml", Src::T("name = \"a\"\nclasses = 3\nlayers = 3\n[input]\ntime_steps = 1\nfeatures = 29\n"))], args: tarch!(), first: "error: {in}: TOML parse error at line 3, column 10: invalid type: integer `3`, expected a sequence", ..ROW },
    Case { name: "arch-no-layers", files: &[("a.toml", Src::T("name = \"a\"\nclasses = 3\nlayers = []\n[input]\ntime_steps = 1\nfeatures = 29\n"))], args: tarch!(), first: "error: {in}: architecture: the model has no layers", ..ROW },
    Case { name: "arch-conv-on-vector", files: &[("a.toml", Src::T(concat!(head!(), "[[layers]]\ntype = \"conv1d\"\nout = 4\nkernel = 3\n[[layers]]\ntype = \"global_avg_pool\"\n", logits!())))], args: tarch!(), first: "error: {in}: layer 0 (conv1d \"conv1\"): conv1d needs a sequence input but gets a vector of 29; use time_steps > 1 and put it before flatten/global_avg_pool", ..ROW },
    Case { name: "arch-dense-on-sequence", files: &[("a.toml", Src::T(concat!("name = \"a\"\nclasses = 3\n[input]\ntime_steps = 8\nfeatures = 29\n", logits!())))], args: tarch!(), first: "error: {in}: layer 0 (dense \"fc1\"): dense needs a vector input but gets a sequence of 8 steps x 29 channels; add flatten or global_avg_pool before it", ..ROW },
    Case { name: "arch-conv-kernel-above-format", files: &[("a.toml", Src::T(concat!("name = \"a\"\nclasses = 3\n[input]\ntime_steps = 8\nfeatures = 29\n[[layers]]\ntype = \"conv1d\"\nout = 4\nkernel = 70000\n[[layers]]\ntype = \"global_avg_pool\"\n", logits!())))], args: tarch!(), first: "error: {in}: layer 0 (conv1d \"conv1\"): kernel 70000 is above 65535, the most the blob format's 16-bit kernel field holds", ..ROW },
    Case { name: "arch-conv-kernel-longer-than-input", files: &[("a.toml", Src::T(concat!("name = \"a\"\nclasses = 3\n[input]\ntime_steps = 8\nfeatures = 29\n[[layers]]\ntype = \"conv1d\"\nout = 4\nkernel = 9\n[[layers]]\ntype = \"global_avg_pool\"\n", logits!())))], args: tarch!(), first: "error: {in}: layer 0 (conv1d \"conv1\"): window too short: 8 steps in, but kernel 9 with dilation 1 spans 9 (use padding = \"causal\" or a longer input)", ..ROW },
    Case { name: "arch-conv-fan-in", files: &[("a.toml", Src::T("name = \"c\"\nclasses = 3\n[input]\ntime_steps = 64\nfeatures = 2000\n[[layers]]\ntype = \"conv1d\"\nout = 2\nkernel = 40\n[[layers]]\ntype = \"global_avg_pool\"\n[[layers]]\ntype = \"dense\"\nout = 3\n"))], args: tarch!(), first: "error: {in}: layer 0 (conv1d \"conv1\"): each output reads 2000 channels x kernel 40 = 80000 inputs, above 65535, the most tickq-core's i32 accumulator bound allows for any weights", ..ROW },
    Case { name: "arch-conv-dilation-zero", files: &[("a.toml", Src::T(concat!("name = \"a\"\nclasses = 3\n[input]\ntime_steps = 8\nfeatures = 29\n[[layers]]\ntype = \"conv1d\"\nout = 4\nkernel = 3\ndilation = 0\n[[layers]]\ntype = \"global_avg_pool\"\n", logits!())))], args: tarch!(), first: "error: {in}: layer 0 (conv1d \"conv1\"): out, kernel, stride and dilation must be at least 1", ..ROW },
    Case { name: "arch-conv-padding-unknown", files: &[("a.toml", Src::T(concat!("name = \"a\"\nclasses = 3\n[input]\ntime_steps = 8\nfeatures = 29\n[[layers]]\ntype = \"conv1d\"\nout = 4\nkernel = 3\npadding = \"mirror\"\n[[layers]]\ntype = \"global_avg_pool\"\n", logits!())))], args: tarch!(), first: "error: {in}: TOML parse error at line 10, column 11: unknown variant `mirror`, expected `valid` or `causal`", ..ROW },
    Case { name: "arch-pool-stride-zero", files: &[("a.toml", Src::T(concat!("name = \"a\"\nclasses = 3\n[input]\ntime_steps = 8\nfeatures = 29\n[[layers]]\ntype = \"maxpool1d\"\nkernel = 2\nstride = 0\n[[layers]]\ntype = \"flatten\"\n", logits!())))], args: tarch!(), first: "error: {in}: layer 0 (maxpool1d): kernel and stride must be at least 1", ..ROW },
    Case { name: "arch-flatten-above-format", files: &[("a.toml", Src::T("name = \"f\"\nclasses = 3\n[input]\ntime_steps = 300\nfeatures = 300\n[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"dense\"\nout = 3\n"))], args: tarch!(), first: "error: {in}: layer 0 (flatten): the output (vector of 90000) has 90000 values, above 65535, the most the blob format's 16-bit size fields hold", ..ROW },
    Case { name: "arch-clamp-inverted", files: &[("a.toml", Src::T(concat!(head!(), "[[layers]]\ntype = \"dense\"\nout = 8\n[[layers]]\ntype = \"clamp\"\nmin = 2.0\nmax = -2.0\n", logits!())))], args: tarch!(), first: "error: {in}: layer 1 (clamp): clamp needs finite bounds with min < max, got min 2 and max -2", ..ROW },
    Case { name: "arch-toml-syntax", files: &[("a.toml", Src::T("name = \"a\nclasses = 3\n"))], args: tarch!(), first: "error: {in}: TOML parse error at line 1, column 10: invalid basic string, expected `\"`", ..ROW },
    Case { name: "arch-json-syntax", files: &[("a.json", Src::T("{\"name\": \"a\", \"classes\": 3,"))], args: tarch!(), first: "error: {in}: EOF while parsing a value at line 1 column 27", ..ROW },
    Case { name: "arch-empty-file", files: &[("a.toml", Src::T(""))], args: tarch!(), first: "error: {in}: TOML parse error at line 1, column 1: missing field `name`", ..ROW },
    Case { name: "arch-binary-file", files: &[("a.toml", Src::G(|_| noise(512)))], args: tarch!(), first: "error: cannot read architecture file {in}: not valid UTF-8 (at byte 2)", ..ROW },
    Case { name: "arch-too-large-file", files: &[("a.toml", Src::G(|_| { let mut t = mlp(&[8]); t.extend(b"#"); t.extend(vec![b'x'; 2 << 20]); t }))], args: tarch!(), first: "error: cannot read architecture file {in}: larger than 1048576 bytes, the most tickq reads from a config file", ..ROW },
    Case { name: "arch-dev-zero", args: "train --arch /dev/zero --data {csv} --out {out}", first: "error: cannot read architecture file /dev/zero: larger than 1048576 bytes, the most tickq reads from a config file", ..ROW },
    Case { name: "arch-missing-file", args: "train --arch {dir}/none.toml --data {csv} --out {out}", first: "error: cannot read architecture file {dir}/none.toml: No such file or directory (os error 2)", ..ROW },
    Case { name: "arch-directory", args: "train --arch {dir} --data {csv} --out {out}", first: "error: cannot read architecture file {dir}: Is a directory (os error 21)", ..ROW },

    // ---- trade CSVs: every error kind of the reader ----
    Case { name: "csv-empty", files: &[("t.csv", Src::T(""))], args: tcsv!(), first: "error: {in}: empty input, expected a header line such as `DateTime,Price,Volume`", ..ROW },
    Case { name: "csv-header-only", files: &[("t.csv", Src::T("DateTime,Price,Volume\n"))], args: tcsv!(), first: "error: {in}: header only, no trade rows", ..ROW },
    Case { name: "csv-too-few-rows", files: &[("t.csv", Src::G(|_| csv_with("")))], args: tcsv!(), first: "error: too few samples: 0 usable, at least 1 needed (2 trades in 1 session(s); each session needs 100 trades and 60000 ms of warm-up, then 1 time steps and 100 trades of label horizon; a gap of more than 1800000 ms between trades starts a session (set it with --session-gap-ms or session_gap_ms in [data.features]))", ..ROW },
    Case { name: "csv-bad-header", files: &[("t.csv", Src::T("a,b,c\n1,2,3\n"))], args: tcsv!(), first: "error: {in}, line 1: missing required column `time` (accepted names: timestamp, ts, time, date, datetime, date_time, gmt_time, local_time; or name it with --columns time=HEADER); header found: `a,b,c`", ..ROW },
    Case { name: "csv-missing-size", files: &[("t.csv", Src::T("DateTime,Price\n2013-09-01 17:00:00.083,1640.25\n"))], args: tcsv!(), first: "error: {in}, line 1: missing required column `size` (accepted names: size, volume, amount, qty, quantity; or name it with --columns size=HEADER); header found: `DateTime,Price`", ..ROW },
    Case { name: "csv-duplicate-column", files: &[("t.csv", Src::T("DateTime,Price,Price,Volume\n"))], args: tcsv!(), first: "error: {in}, line 1: columns 2 (`Price`) and 3 (`Price`) could both be the `price` column; name the one to read, e.g. --columns price=Price (`columns = { price = \"Price\" }` under `[data.read]` in a pipeline)", ..ROW },
    Case { name: "csv-too-few-fields", files: &[("t.csv", Src::G(|_| csv_with("2013-09-01 17:00:00.200,1640.50\n")))], args: tcsv!(), first: "error: {in}, line 4: expected 3 fields as in the header, found 2", ..ROW },
    Case { name: "csv-too-many-fields", files: &[("t.csv", Src::G(|_| csv_with("2013-09-01 17:00:00.200,1640.50,1,7\n")))], args: tcsv!(), first: "error: {in}, line 4: expected 3 fields as in the header, found 4", ..ROW },
    Case { name: "csv-price-word", files: &[("t.csv", Src::G(|_| csv_with("2013-09-01 17:00:00.200,abc,1\n")))], args: tcsv!(), first: "error: {in}, line 4, column 2 (Price): `abc` is not a number", ..ROW },
    Case { name: "csv-price-empty", files: &[("t.csv", Src::G(|_| csv_with("2013-09-01 17:00:00.200,,1\n")))], args: tcsv!(), first: "error: {in}, line 4, column 2 (Price): `` is not a number", ..ROW },
    Case { name: "csv-price-nan", files: &[("t.csv", Src::G(|_| csv_with("2013-09-01 17:00:00.200,NaN,1\n")))], args: tcsv!(), first: "error: {in}, line 4, column 2 (Price): `NaN` is not finite", ..ROW },
    Case { name: "csv-price-inf", files: &[("t.csv", Src::G(|_| csv_with("2013-09-01 17:00:00.200,inf,1\n")))], args: tcsv!(), first: "error: {in}, line 4, column 2 (Price): `inf` is not finite", ..ROW },
    Case { name: "csv-price-overflow", files: &[("t.csv", Src::G(|_| csv_with("2013-09-01 17:00:00.200,1e999,1\n")))], args: tcsv!(), first: "error: {in}, line 4, column 2 (Price): `1e999` is not finite", ..ROW },
    Case { name: "csv-price-negative", files: &[("t.csv", Src::G(|_| csv_with("2013-09-01 17:00:00.200,-1640.5,1\n")))], args: tcsv!(), first: "error: {in}, line 4, column 2 (Price): price -1640.5 must be > 0", ..ROW },
    Case { name: "csv-price-zero", files: &[("t.csv", Src::G(|_| csv_with("2013-09-01 17:00:00.200,0,1\n")))], args: tcsv!(), first: "error: {in}, line 4, column 2 (Price): price 0 must be > 0", ..ROW },
    Case { name: "csv-size-negative", files: &[("t.csv", Src::G(|_| csv_with("2013-09-01 17:00:00.200,1640.50,-2\n")))], args: tcsv!(), first: "error: {in}, line 4, column 3 (Volume): size -2 must be >= 0", ..ROW },
    Case { name: "csv-size-nan", files: &[("t.csv", Src::G(|_| csv_with("2013-09-01 17:00:00.200,1640.50,nan\n")))], args: tcsv!(), first: "error: {in}, line 4, column 3 (Volume): `nan` is not finite", ..ROW },
    Case { name: "csv-time-backwards", files: &[("t.csv", Src::G(|_| csv_with("2013-09-01 16:59:59.000,1640.50,1\n")))], args: tcsv!(), first: "error: {in}, line 4, column 1 (DateTime): time goes backwards: `2013-09-01 16:59:59.000` is 1100 ms before the previous row (line 3)", ..ROW },
    Case { name: "csv-bad-timestamp", files: &[("t.csv", Src::G(|_| csv_with("yesterday,1640.50,1\n")))], args: tcsv!(), first: "error: {in}, line 4, column 1 (DateTime): bad timestamp `yesterday` (expected `YYYY-MM-DD HH:MM:SS[.fff]`, `YYYY-MM-DDTHH:MM:SS[.fff][Z]` or an epoch integer (seconds, milliseconds, microseconds or nanoseconds by magnitude))", ..ROW },
    Case { name: "csv-impossible-date", files: &[("t.csv", Src::G(|_| csv_with("2013-02-30 17:00:00.200,1640.50,1\n")))], args: tcsv!(), first: "error: {in}, line 4, column 1 (DateTime): bad timestamp `2013-02-30 17:00:00.200` (expected `YYYY-MM-DD HH:MM:SS[.fff]`, `YYYY-MM-DDTHH:MM:SS[.fff][Z]` or an epoch integer (seconds, milliseconds, microseconds or nanoseconds by magnitude))", ..ROW },
    Case { name: "csv-impossible-time", files: &[("t.csv", Src::G(|_| csv_with("2013-09-01 25:00:00.200,1640.50,1\n")))], args: tcsv!(), first: "error: {in}, line 4, column 1 (DateTime): bad timestamp `2013-09-01 25:00:00.200` (expected `YYYY-MM-DD HH:MM:SS[.fff]`, `YYYY-MM-DDTHH:MM:SS[.fff][Z]` or an epoch integer (seconds, milliseconds, microseconds or nanoseconds by magnitude))", ..ROW },
    Case { name: "csv-bad-side", files: &[("t.csv", Src::T("DateTime,Price,Volume,Side\n2013-09-01 17:00:00.083,1640.25,8,up\n"))], args: tcsv!(), first: "error: {in}, line 2, column 4 (Side): bad side `up` (expected buy, sell, b, s or empty)", ..ROW },
    Case { name: "csv-line-too-long", files: &[("t.csv", Src::G(|_| csv_with(&format!("2013-09-01 17:00:00.200,1640.50,1{}\n", " ".repeat(70_000)))))], args: tcsv!(), first: "error: {in}, line 4: longer than 65536 bytes, the most a trade CSV line may have (is this a trade CSV with line ends?)", ..ROW },
    Case { name: "csv-field-too-long", files: &[("t.csv", Src::G(|_| csv_with(&format!("2013-09-01 17:00:00.200,{},1\n", "9".repeat(5_000)))))], args: tcsv!(), first: "error: {in}, line 4, column 2: the field `99999999999999999999999999999999999999999999999999999999999999999999999999999999… (5000 bytes)` is 5000 bytes long, above 1024, the most a field may have", ..ROW },
    // ---- reading options: each refused before or while reading, naming the setting or the place ----
    Case { name: "read-columns-syntax", args: "train --arch {arch} --data {csv} --out {out} --columns time", code: 2, first: "error: invalid value 'time' for '--columns <ROLE=HEADER,...>': columns: `time` is not ROLE=HEADER (for example time=Time,price=Close)", ..ROW },
    Case { name: "read-columns-unknown", args: "train --arch {arch} --data {csv} --out {out} --device cpu --columns price=Close", first: "error: {csv}, line 1: the column mapping reads `price` from `Close`, but no column has that name; header found: `DateTime,Price,Volume`", ..ROW },
    Case { name: "read-time-format", args: "train --arch {arch} --data {csv} --out {out} --time-format epoch-min", code: 2, first: "error: invalid value 'epoch-min' for '--time-format <FORMAT>': time_format: `epoch-min` is neither auto, epoch-s, epoch-ms, epoch-us, epoch-ns nor a strftime pattern (it has no % directive)", ..ROW },
    Case { name: "read-time-pattern-mismatch", args: "train --arch {arch} --data {csv} --out {out} --device cpu --time-format %d.%m.%Y", first: "error: {csv}, line 2, column 1 (DateTime): bad timestamp `2013-09-01 17:00:00.083` (expected the pattern `%d.%m.%Y`)", ..ROW },
    Case { name: "read-delimiter", args: "train --arch {arch} --data {csv} --out {out} --delimiter ab", code: 2, first: "error: invalid value 'ab' for '--delimiter <CHAR>': delimiter: `ab` is not a delimiter: use one ASCII character such as , ; | or the word tab (not a letter, digit, quote, dot or minus)", ..ROW },
    Case { name: "read-time-zone", args: "train --arch {arch} --data {csv} --out {out} --time-zone +5", code: 2, first: "error: invalid value '+5' for '--time-zone <ZONE>': time_zone: `+5` is not a time zone: use an IANA name such as America/New_York, UTC or an offset such as +02:00 (an offset is +HH, +HHMM or +HH:MM)", ..ROW },
    Case { name: "csv-ambiguous-size", files: &[("t.csv", Src::T("date,price,volume_btc,volume\n2013-09-01 17:00:00.083,1640.25,8,9\n"))], args: tcsv!(), first: "error: {in}, line 1: columns 3 (`volume_btc`) and 4 (`volume`) could both be the `size` column; name the one to read, e.g. --columns size=volume_btc (`columns = { size = \"volume_btc\" }` under `[data.read]` in a pipeline)", ..ROW },
    Case { name: "csv-newest-first-forwards", files: &[("t.csv", Src::T("DateTime,Price,Volume\n2013-09-01 17:00:03,1,1\n2013-09-01 17:00:02,1,1\n2013-09-01 17:00:02.5,1,1\n2013-09-01 17:00:01,1,1\n"))], args: tcsv!(), first: "error: {in}, line 4, column 1 (DateTime): the file is newest-first, but `2013-09-01 17:00:02.5` is 500 ms after the previous row (line 3)", ..ROW },
    Case { name: "csv-header-name-too-long", files: &[("t.csv", Src::G(|_| format!("DateTime,Price,Volume,{}\n", "h".repeat(2_000)).into_bytes()))], args: tcsv!(), first: "error: {in}, line 1, column 4: the field `hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh… (2000 bytes)` is 2000 bytes long, above 1024, the most a field may have", ..ROW },
    Case { name: "csv-nul-byte", files: &[("t.csv", Src::G(|_| csv_with("2013-09-01 17:00:00.200,16\u{0}40.25,8\n")))], args: tcsv!(), first: "error: {in}, line 4, column 2 (Price): `16\\040.25` is not a number", ..ROW },
    Case { name: "csv-escape-in-header", files: &[("t.csv", Src::T("Date\u{1b}[31m,Price,Volume\n"))], args: tcsv!(), first: "error: {in}, line 1: missing required column `time` (accepted names: timestamp, ts, time, date, datetime, date_time, gmt_time, local_time; or name it with --columns time=HEADER); header found: `Date\\u{1b}[31m,Price,Volume`", ..ROW },
    Case { name: "csv-invalid-utf8", files: &[("t.csv", Src::G(|_| { let mut b = csv_with(""); b.extend(b"2013-09-01 17:00:00.200,16\xff40.25,8\n"); b }))], args: tcsv!(), first: "error: {in}, line 4: not valid UTF-8", ..ROW },
    Case { name: "csv-binary", files: &[("t.csv", Src::G(|_| noise(4096)))], args: tcsv!(), first: "error: {in}, line 1: not valid UTF-8", ..ROW },
    Case { name: "csv-dev-zero", args: "train --arch {arch} --data /dev/zero --out {out}", first: "error: /dev/zero, line 1: longer than 65536 bytes, the most a trade CSV line may have (is this a trade CSV with line ends?)", ..ROW },
    Case { name: "csv-missing-file", args: "train --arch {arch} --data {dir}/none.csv --out {out}", first: "error: {dir}/none.csv: no such file; pass --data an existing trade file (CSV or Parquet), or leave --data out for the bundled ES ticks", ..ROW },
    Case { name: "csv-directory", args: "train --arch {arch} --data {dir} --out {out}", first: "error: {dir}, line 1: read error: Is a directory (os error 21)", ..ROW },
    Case { name: "csv-sample-matrix-memory", args: tr!(), env: &[("TICKQ_MEMORY_LIMIT", "100000")], first: "error: the sample matrix (14006 samples x 1 time steps x 29 features, with its split and standardized copies) needs about 4874088 bytes (4.6 MiB) of memory, more than the 100000 bytes (97.7 KiB) that TICKQ_MEMORY_LIMIT allows", ..ROW },
    Case { name: "csv-bench-bad-data", files: &[("t.csv", Src::T("a,b,c\n"))], args: "bench {blob} --data {in} --calls 10", first: "error: {in}, line 1: missing required column `time` (accepted names: timestamp, ts, time, date, datetime, date_time, gmt_time, local_time; or name it with --columns time=HEADER); header found: `a,b,c`", ..ROW },

    // ---- blobs: truncated, corrupted, re-sealed fields, not a blob, the wrong kind of file ----
    Case { name: "blob-empty", files: &[("m.blob", Src::T(""))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: blob at byte 0: truncated", ..ROW },
    Case { name: "blob-header-only", files: &[("m.blob", Src::G(|f| f.blob_bytes()[..64].to_vec()))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: blob at byte 16: length mismatch (header declares 2025)", ..ROW },
    Case { name: "blob-truncated-40", files: &[("m.blob", Src::G(|f| f.blob_bytes()[..40].to_vec()))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: blob at byte 40: truncated", ..ROW },
    Case { name: "blob-truncated-half", files: &[("m.blob", Src::G(|f| { let b = f.blob_bytes(); b[..b.len() / 2].to_vec() }))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: blob at byte 16: length mismatch (header declares 2025)", ..ROW },
    Case { name: "blob-truncated-resealed", files: &[("m.blob", Src::G(|f| { let b = f.blob_bytes(); reseal(b[..b.len() - 16].to_vec()) }))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: blob at byte 16: length mismatch (header declares 2025)", ..ROW },
    Case { name: "blob-trailing-bytes", files: &[("m.blob", Src::G(|f| { let mut b = f.blob_bytes(); b.extend([0u8; 16]); b }))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: blob at byte 16: length mismatch (header declares 2025)", ..ROW },
    Case { name: "blob-bad-magic", files: &[("m.blob", Src::G(|f| { let mut b = f.blob_bytes(); b[0] = b'X'; b }))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: blob at byte 0: bad magic", ..ROW },
    Case { name: "blob-bad-crc", files: &[("m.blob", Src::G(|f| { let mut b = f.blob_bytes(); let n = b.len(); b[n - 1] ^= 0x55; b }))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: blob at byte 12: CRC mismatch (stored 0xe8651510, computed 0xf364b06b)", ..ROW },
    Case { name: "blob-version-99", files: &[("m.blob", Src::G(|f| { let mut b = f.blob_bytes(); b[8..10].copy_from_slice(&99u16.to_le_bytes()); reseal(b) }))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: blob at byte 8: unsupported version (found 99)", ..ROW },
    Case { name: "blob-version-0", files: &[("m.blob", Src::G(|f| { let mut b = f.blob_bytes(); b[8..10].copy_from_slice(&0u16.to_le_bytes()); reseal(b) }))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: blob at byte 8: unsupported version (found 0)", ..ROW },
    Case { name: "blob-total-len-wrong", files: &[("m.blob", Src::G(|f| { let mut b = f.blob_bytes(); let n = b.len() as u32 + 64; b[16..20].copy_from_slice(&n.to_le_bytes()); reseal(b) }))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: blob at byte 16: length mismatch (header declares 2089)", ..ROW },
    Case { name: "blob-layer-count-zero", files: &[("m.blob", Src::G(|f| { let mut b = f.blob_bytes(); b[20..22].copy_from_slice(&0u16.to_le_bytes()); reseal(b) }))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: blob at byte 20: bad layer count (found 0)", ..ROW },
    Case { name: "blob-layer-count-1000", files: &[("m.blob", Src::G(|f| { let mut b = f.blob_bytes(); b[20..22].copy_from_slice(&1000u16.to_le_bytes()); reseal(b) }))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: blob at byte 20: bad layer count (found 1000)", ..ROW },
    Case { name: "blob-layer-table-outside", files: &[("m.blob", Src::G(|f| { let mut b = f.blob_bytes(); b[24..28].copy_from_slice(&u32::MAX.to_le_bytes()); reseal(b) }))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: blob at byte 24: bad layer table offset", ..ROW },
    Case { name: "blob-metadata-outside", files: &[("m.blob", Src::G(|f| { let mut b = f.blob_bytes(); b[32..36].copy_from_slice(&0x00FF_FFFFu32.to_le_bytes()); reseal(b) }))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: blob at byte 28: metadata out of bounds", ..ROW },
    Case { name: "blob-layer-kind-unknown", files: &[("m.blob", Src::G(|f| { let mut b = f.blob_bytes(); let t = u32::from_le_bytes(b[24..28].try_into().unwrap()) as usize; b[t] = 0xEE; reseal(b) }))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: layer 0 at byte 64: unknown layer kind (found 238)", ..ROW },
    Case { name: "blob-random-bytes", files: &[("m.blob", Src::G(|_| noise(4096)))], args: "inspect {in}", first: "error: {in}: not a blob tickq-core loads: blob at byte 0: bad magic", ..ROW },
    Case { name: "blob-random-with-magic", files: &[("m.blob", Src::G(|_| { let mut b = noise(4096); b[..8].copy_from_slice(b"TICKQBLB"); reseal(b) }))], args: "inspect {in}", first: "error: {in}: the blob header declares 3362477437 bytes, above 268435456, the most tickq reads from a blob", ..ROW },
    Case { name: "blob-is-csv", args: "inspect {csv}", first: "error: {csv}: not a blob tickq-core loads: blob at byte 0: bad magic", ..ROW },
    Case { name: "blob-missing", args: "inspect {dir}/none.blob", first: "error: {dir}/none.blob: No such file or directory (os error 2)", ..ROW },
    Case { name: "blob-directory", args: "inspect {dir}", first: "error: {dir}: Is a directory (os error 21)", ..ROW },
    Case { name: "blob-dev-zero", args: "inspect /dev/zero", first: "error: /dev/zero: not a blob tickq-core loads: blob at byte 0: bad magic", ..ROW },
    Case { name: "blob-declares-4-gib", files: &[("m.blob", Src::G(|f| { let mut b = f.blob_bytes(); b[16..20].copy_from_slice(&u32::MAX.to_le_bytes()); reseal(b) }))], args: "inspect {in}", first: "error: {in}: the blob header declares 4294967295 bytes, above 268435456, the most tickq reads from a blob", ..ROW },
    Case { name: "bench-dev-zero", args: "bench /dev/zero --calls 10", first: "error: /dev/zero: not a blob tickq-core loads: blob at byte 0: bad magic", ..ROW },
    Case { name: "export-dev-zero", args: "export /dev/zero --format c-header --out {out}", first: "error: /dev/zero: not a blob tickq-core loads: blob at byte 0: bad magic", ..ROW },
    Case { name: "stats-dev-zero", args: "stats /dev/zero", first: "error: /dev/zero: no pruning statistics: the blob does not load: blob at byte 0: bad magic", ..ROW },
    Case { name: "eval-blob-dev-zero", args: "eval {ckpt} --blob /dev/zero --out {out} --device cpu", first: "error: /dev/zero: not a blob tickq-core loads: blob at byte 0: bad magic", ..ROW },
    Case { name: "bench-bad-crc", files: &[("m.blob", Src::G(|f| { let mut b = f.blob_bytes(); let n = b.len(); b[n - 1] ^= 0x55; b }))], args: "bench {in} --calls 10", first: "error: {in}: not a blob tickq-core loads: blob at byte 12: CRC mismatch (stored 0xe8651510, computed 0xf364b06b)", ..ROW },
    Case { name: "export-truncated", files: &[("m.blob", Src::G(|f| f.blob_bytes()[..40].to_vec()))], args: "export {in} --format c-header --out {out}", first: "error: {in}: not a blob tickq-core loads: blob at byte 40: truncated", ..ROW },
    Case { name: "stats-bad-magic", files: &[("m.blob", Src::G(|f| { let mut b = f.blob_bytes(); b[0] = b'X'; b }))], args: "stats {in}", first: "error: {in}: no pruning statistics: the blob does not load: blob at byte 0: bad magic", ..ROW },
    Case { name: "eval-blob-is-csv", args: "eval {ckpt} --blob {csv} --out {out} --device cpu", first: "error: {csv}: not a blob tickq-core loads: blob at byte 0: bad magic", ..ROW },
    Case { name: "export-dynamic-int8-vectors", args: "export {dyn} --format blob --out {out} --vectors 5 --vector-input int8 --data {csv}", first: "error: int8 test vectors cannot hold a dynamic blob's input: its int8 mantissas come with a per-sample exponent, which Session::run_quantized and the vector format do not take; export f32 vectors (--vector-input f32 or auto, vector_input = \"f32\" or \"auto\" in a pipeline)", ..ROW },
    Case { name: "quantize-checkpoint-missing", args: "quantize {dir}/none --out {out}", first: "error: cannot read architecture file {dir}/none/arch.toml: No such file or directory (os error 2)", ..ROW },
    Case { name: "quantize-checkpoint-is-blob", args: "quantize {blob} --out {out}", first: "error: cannot read architecture file {blob}/arch.toml: Not a directory (os error 20)", ..ROW },
    Case { name: "quantize-out-directory", args: "quantize {ckpt} --out {dir}", first: "error: {dir}: is a directory, so the blob cannot be written there; give a file name", ..ROW },
    Case { name: "eval-out-is-file", files: &[("report.txt", Src::T("not a directory"))], args: "eval {ckpt} --blob {blob} --out {in}", first: "error: {in}: exists and is not a directory, so report.md and report.json cannot be written into it; give a new path or a directory", ..ROW },
    Case { name: "train-out-below-file", files: &[("f.txt", Src::T("x"))], args: "train --arch {arch} --data {csv} --out {in}/ckpt", first: "error: {in}/ckpt: {in} exists and is not a directory, so nothing can be written below it", ..ROW },
    Case { name: "sensitivity-out-directory", args: "sensitivity {ckpt} --out {dir}", first: "error: {dir}: is a directory, so the report cannot be written there; give a file name", ..ROW },
    Case { name: "stats-missing", args: "stats {dir}/none", first: "error: {dir}/none: No such file or directory (os error 2)", ..ROW },
    Case { name: "distill-student-missing", args: "distill --teacher {ckpt} --student {dir}/none.toml --out {out}", first: "error: cannot read architecture file {dir}/none.toml: No such file or directory (os error 2)", ..ROW },
    Case { name: "import-weights-missing", args: "import --weights {dir}/none.safetensors --arch {arch} --out {out}", first: "error: {dir}/none.safetensors: No such file or directory (os error 2)", ..ROW },
    Case { name: "import-weights-random", files: &[("w.safetensors", Src::G(|_| noise(256)))], args: "import --weights {in} --arch {arch} --out {out}", first: "error: {in}: not a valid safetensors file: header too large", ..ROW },
    Case { name: "import-weights-dev-zero", args: "import --weights /dev/zero --arch {arch} --out {out}", first: "error: /dev/zero: larger than 1073741824 bytes, the most tickq reads from a safetensors file", ..ROW },
    Case { name: "import-arch-201-layers", files: &[("a.toml", Src::G(|_| mlp(&[8; 100])))], args: "import --weights {dir}/none.safetensors --arch {in} --out {out}", first: "error: {in}: architecture: its 201 layers make 102 blob layers (the input quantizer counts as one; a relu, relu6 or clamp right after dense or conv1d is fused into it), above 32, the most a tickq-core blob holds", ..ROW },
    Case { name: "demo-out-is-file", files: &[("f.txt", Src::T("x"))], args: "demo --out {in} --device cpu", first: "error: {in}: exists and is not a directory, so the demo's stages, checkpoint, blob and report cannot be written into it; give a new path or a directory", ..ROW },

    // ---- pipeline configs: every stage's settings, checked before the first stage runs ----
    Case { name: "pipe-syntax", files: &[("p.toml", Src::T("[[stages]\nname = \"t\"\n"))], args: pipe!(), first: "error: {in}: TOML parse error at line 1, column 10: unclosed array table, expected `]`", ..ROW },
    Case { name: "pipe-empty", files: &[("p.toml", Src::T(""))], args: pipe!(), first: "error: {in}: no [[stages]]: a pipeline needs at least one stage", ..ROW },
    Case { name: "pipe-unknown-top-key", files: &[("p.toml", Src::T(concat!("verbose = true\n", pt!())))], args: pipe!(), first: "error: {in}: TOML parse error at line 1, column 1: unknown field `verbose`, expected `data` or `stages`", ..ROW },
    Case { name: "pipe-unknown-data-key", files: &[("p.toml", Src::T("[data]\nrows = 5\n[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\n"))], args: pipe!(), first: "error: {in}: TOML parse error at line 2, column 1: unknown field `rows`, expected one of `csv`, `time_steps`, `features`, `labels`, `split`, `read`, `input`, `market`", ..ROW },
    Case { name: "pipe-stage-without-name", files: &[("p.toml", Src::T("[[stages]]\nkind = \"train\"\narch = \"demo-mlp\"\n"))], args: pipe!(), first: "error: {in}: stage 1: missing field `name`", ..ROW },
    Case { name: "pipe-stage-without-kind", files: &[("p.toml", Src::T("[[stages]]\nname = \"t\"\narch = \"demo-mlp\"\n"))], args: pipe!(), first: "error: {in}: stage `t`: missing field `kind` (train, prune, distill, quantize or export)", ..ROW },
    Case { name: "pipe-kind-unknown", files: &[("p.toml", Src::T("[[stages]]\nname = \"t\"\nkind = \"deploy\"\n"))], args: pipe!(), first: "error: {in}: stage `t`: field `kind`: unknown kind `deploy`; use train, prune, distill, quantize or export", ..ROW },
    Case { name: "pipe-stage-unknown-key", files: &[("p.toml", Src::T(concat!(pt!(), "speed = 3\n")))], args: pipe!(), first: "error: {in}: stage `t` (train): unknown field `speed`, expected one of `arch`, `epochs`, `batch_size`, `optimizer`, `lr`, `momentum`, `patience`, `seed`, `class_weights`, `shuffle`", ..ROW },
    Case { name: "pipe-duplicate-name", files: &[("p.toml", Src::T(concat!(pt!(), "[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\n")))], args: pipe!(), first: "error: {in}: stage `t` (train): field `name`: another stage is already named `t`; names must be unique", ..ROW },
    Case { name: "pipe-from-later", files: &[("p.toml", Src::T("[[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"t\"\n[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\n"))], args: pipe!(), first: "error: {in}: stage `q` (quantize): field `from`: `t` comes later in the file; a stage can only use earlier stages", ..ROW },
    Case { name: "pipe-from-unknown", files: &[("p.toml", Src::T(concat!(pt!(), "[[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"nobody\"\n")))], args: pipe!(), first: "error: {in}: stage `q` (quantize): field `from`: there is no stage named `nobody`", ..ROW },
    Case { name: "pipe-quantize-from-quantize", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "[[stages]]\nname = \"q2\"\nkind = \"quantize\"\nfrom = \"q\"\n")))], args: pipe!(), first: "error: {in}: stage `q2` (quantize): field `from`: `q` is a quantize stage, but this stage needs a model (a train, prune or distill stage)", ..ROW },
    Case { name: "pipe-export-from-train", files: &[("p.toml", Src::T(concat!(pt!(), "[[stages]]\nname = \"e\"\nkind = \"export\"\nfrom = \"t\"\n")))], args: pipe!(), first: "error: {in}: stage `e` (export): field `from`: `t` is a train stage, but this stage needs a blob (a quantize stage)", ..ROW },
    Case { name: "pipe-train-epochs-zero", files: &[("p.toml", Src::T("[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\nepochs = 0\n"))], args: pipe!(), first: "error: {in}: stage `t` (train): field `epochs`: 0 is out of range: expected a whole number from 1 to 1000000", ..ROW },
    Case { name: "pipe-train-epochs-negative", files: &[("p.toml", Src::T("[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\nepochs = -1\n"))], args: pipe!(), first: "error: {in}: stage `t` (train): field `epochs`: -1 is out of range: expected a whole number from 1 to 1000000", ..ROW },
    Case { name: "pipe-train-epochs-string", files: &[("p.toml", Src::T("[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\nepochs = \"ten\"\n"))], args: pipe!(), first: "error: {in}: stage `t` (train): field `epochs`: expected a whole number from 1 to 1000000, found a string", ..ROW },
    Case { name: "pipe-train-lr-zero", files: &[("p.toml", Src::T(concat!(pt!(), "lr = 0.0\n")))], args: pipe!(), first: "error: {in}: stage `t` (train): field `lr`: 0 is out of range: expected a finite number > 0", ..ROW },
    Case { name: "pipe-train-lr-nan", files: &[("p.toml", Src::T(concat!(pt!(), "lr = nan\n")))], args: pipe!(), first: "error: {in}: stage `t` (train): field `lr`: NaN is out of range: expected a finite number > 0", ..ROW },
    Case { name: "pipe-train-momentum-two", files: &[("p.toml", Src::T(concat!(pt!(), "optimizer = \"sgd\"\nmomentum = 2.0\n")))], args: pipe!(), first: "error: {in}: stage `t` (train): field `momentum`: 2 is out of range: expected a number in [0, 1)", ..ROW },
    Case { name: "pipe-train-momentum-adam", files: &[("p.toml", Src::T(concat!(pt!(), "momentum = 0.5\n")))], args: pipe!(), first: "error: {in}: stage `t` (train): field `momentum`: only optimizer = sgd uses it (this run has optimizer = adam)", ..ROW },
    Case { name: "pipe-train-optimizer-unknown", files: &[("p.toml", Src::T(concat!(pt!(), "optimizer = \"lion\"\n")))], args: pipe!(), first: "error: {in}: stage `t` (train): field `optimizer`: `lion`; use adam or sgd", ..ROW },
    Case { name: "pipe-train-class-weights-unknown", files: &[("p.toml", Src::T(concat!(pt!(), "class_weights = \"inverse\"\n")))], args: pipe!(), first: "error: {in}: stage `t` (train): field `class_weights`: `inverse`; use none or balanced", ..ROW },
    Case { name: "pipe-train-batch-size-zero", files: &[("p.toml", Src::T(concat!(pt!(), "batch_size = 0\n")))], args: pipe!(), first: "error: {in}: stage `t` (train): field `batch_size`: 0 is out of range: expected a whole number from 1 to 16777216", ..ROW },
    Case { name: "pipe-train-patience-huge", files: &[("p.toml", Src::T(concat!(pt!(), "patience = 2000000\n")))], args: pipe!(), first: "error: {in}: stage `t` (train): field `patience`: 2000000 is out of range: expected a whole number from 0 to 1000000", ..ROW },
    Case { name: "pipe-train-arch-unknown-shape", files: &[("p.toml", Src::T("[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"resnet50\"\n"))], args: pipe!(), first: "error: {in}: stage `t` (train): field `arch`: `resnet50` is no bundled shape (demo-mlp, ref-mlp, ref-conv, ref-wide, conv-window) and {dir}/resnet50: No such file or directory (os error 2)", ..ROW },
    Case { name: "pipe-train-arch-201-layers", files: &[("p.toml", Src::T("[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"deep.toml\"\n")), ("deep.toml", Src::G(|_| mlp(&[8; 100])))], args: pipe!(), first: "error: {in}: stage `t` (train): field `arch`: {dir}/deep.toml: architecture: its 201 layers make 102 blob layers (the input quantizer counts as one; a relu, relu6 or clamp right after dense or conv1d is fused into it), above 32, the most a tickq-core blob holds", ..ROW },
    Case { name: "pipe-train-arch-window-mismatch", files: &[("p.toml", Src::T("[data]\ntime_steps = 4\n[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\n"))], args: pipe!(), first: "error: {in}: stage `t` (train): field `arch`: architecture `demo-mlp` takes 29 features x 1 time steps, but [data] gives 29 x 4", ..ROW },
    Case { name: "pipe-prune-amount-one", files: &[("p.toml", Src::T(concat!(pt!(), "[[stages]]\nname = \"p\"\nkind = \"prune\"\nfrom = \"t\"\nmethod = \"global\"\namount = 1.0\n")))], args: pipe!(), first: "error: {in}: stage `p` (prune): field `amount`: 1 is out of range: expected a number in [0, 1)", ..ROW },
    Case { name: "pipe-prune-amount-missing", files: &[("p.toml", Src::T(concat!(pt!(), "[[stages]]\nname = \"p\"\nkind = \"prune\"\nfrom = \"t\"\nmethod = \"global\"\n")))], args: pipe!(), first: "error: {in}: stage `p` (prune): missing field `amount` (the global method needs a target in [0, 1))", ..ROW },
    Case { name: "pipe-prune-method-unknown", files: &[("p.toml", Src::T(concat!(pt!(), "[[stages]]\nname = \"p\"\nkind = \"prune\"\nfrom = \"t\"\nmethod = \"random\"\namount = 0.5\n")))], args: pipe!(), first: "error: {in}: stage `p` (prune): field `method`: `random`; use unstructured, global, structured or nm", ..ROW },
    Case { name: "pipe-prune-n-above-m", files: &[("p.toml", Src::T(concat!(pt!(), "[[stages]]\nname = \"p\"\nkind = \"prune\"\nfrom = \"t\"\nmethod = \"nm\"\nn = 5\nm = 4\n")))], args: pipe!(), first: "error: {in}: stage `p` (prune): fields `n`, `m`: n = 5 is above m = 4; N:M keeps n of every m weights", ..ROW },
    Case { name: "pipe-prune-steps-zero", files: &[("p.toml", Src::T(concat!(pt!(), "[[stages]]\nname = \"p\"\nkind = \"prune\"\nfrom = \"t\"\nmethod = \"global\"\namount = 0.5\nschedule = \"gradual\"\nsteps = 0\n")))], args: pipe!(), first: "error: {in}: stage `p` (prune): field `steps`: 0 is out of range: expected a whole number from 1 to 1000", ..ROW },
    Case { name: "pipe-prune-dim-two", files: &[("p.toml", Src::T(concat!(pt!(), "[[stages]]\nname = \"p\"\nkind = \"prune\"\nfrom = \"t\"\nmethod = \"structured\"\namount = 0.5\ndim = 2\n")))], args: pipe!(), first: "error: {in}: stage `p` (prune): field `dim`: 2 is out of range: expected a whole number from 0 to 1", ..ROW },
    Case { name: "pipe-prune-schedule-unknown", files: &[("p.toml", Src::T(concat!(pt!(), "[[stages]]\nname = \"p\"\nkind = \"prune\"\nfrom = \"t\"\nmethod = \"global\"\namount = 0.5\nschedule = \"cosine\"\n")))], args: pipe!(), first: "error: {in}: stage `p` (prune): field `schedule`: `cosine`; use one-shot or gradual", ..ROW },
    Case { name: "pipe-prune-norm-unknown", files: &[("p.toml", Src::T(concat!(pt!(), "[[stages]]\nname = \"p\"\nkind = \"prune\"\nfrom = \"t\"\nmethod = \"structured\"\namount = 0.5\nnorm = 3\n")))], args: pipe!(), first: "error: {in}: stage `p` (prune): field `norm`: unknown norm `3`, expected 1, 2 or inf", ..ROW },
    Case { name: "pipe-distill-alpha-two", files: &[("p.toml", Src::T(concat!(pt!(), "[[stages]]\nname = \"d\"\nkind = \"distill\"\nteacher = \"t\"\nstudent = \"demo-mlp\"\nalpha = 2.0\n")))], args: pipe!(), first: "error: {in}: stage `d` (distill): fields `temperature`, `alpha`: distillation alpha must be in [0, 1], got 2", ..ROW },
    Case { name: "pipe-distill-temperature-zero", files: &[("p.toml", Src::T(concat!(pt!(), "[[stages]]\nname = \"d\"\nkind = \"distill\"\nteacher = \"t\"\nstudent = \"demo-mlp\"\ntemperature = 0.0\n")))], args: pipe!(), first: "error: {in}: stage `d` (distill): fields `temperature`, `alpha`: distillation temperature must be finite and > 0, got 0", ..ROW },
    Case { name: "pipe-distill-no-student", files: &[("p.toml", Src::T(concat!(pt!(), "[[stages]]\nname = \"d\"\nkind = \"distill\"\nteacher = \"t\"\n")))], args: pipe!(), first: "error: {in}: stage `d` (distill): give exactly one of `student` (an architecture) and `student_from` (an earlier model stage)", ..ROW },
    Case { name: "pipe-distill-two-students", files: &[("p.toml", Src::T(concat!(pt!(), "[[stages]]\nname = \"d\"\nkind = \"distill\"\nteacher = \"t\"\nstudent = \"demo-mlp\"\nstudent_from = \"t\"\n")))], args: pipe!(), first: "error: {in}: stage `d` (distill): give exactly one of `student` (an architecture) and `student_from` (an earlier model stage)", ..ROW },
    Case { name: "pipe-quantize-latency-float", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "latency_calls = 1e12\n")))], args: pipe!(), first: "error: {in}: stage `q` (quantize): field `latency_calls`: 1000000000000 is out of range: expected a whole number from 1 to 10000000", ..ROW },
    Case { name: "pipe-quantize-latency-huge", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "latency_calls = 1000000000000\n")))], args: pipe!(), first: "error: {in}: stage `q` (quantize): field `latency_calls`: 1000000000000 is out of range: expected a whole number from 1 to 10000000", ..ROW },
    Case { name: "pipe-quantize-latency-zero", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "latency_calls = 0\n")))], args: pipe!(), first: "error: {in}: stage `q` (quantize): field `latency_calls`: 0 is out of range: expected a whole number from 1 to 10000000", ..ROW },
    Case { name: "pipe-quantize-percentile-low", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "observer = \"percentile\"\npercentile = 20.0\n")))], args: pipe!(), first: "error: {in}: stage `q` (quantize): field `percentile`: 20 is out of range: expected a number in [50, 100]", ..ROW },
    Case { name: "pipe-quantize-averaging-zero", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "observer = \"moving_average_minmax\"\naveraging_constant = 0.0\n")))], args: pipe!(), first: "error: {in}: stage `q` (quantize): field `averaging_constant`: 0 is out of range: expected a number in (0, 1]", ..ROW },
    Case { name: "pipe-quantize-observer-unknown", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "observer = \"median\"\n")))], args: pipe!(), first: "error: {in}: stage `q` (quantize): field `observer`: `median`; use minmax, moving_average_minmax, percentile, mse or kl", ..ROW },
    Case { name: "pipe-quantize-calibration-zero", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "calibration_samples = 0\n")))], args: pipe!(), first: "error: {in}: stage `q` (quantize): field `calibration_samples`: 0 is out of range: expected a whole number from 1 to 4294967295", ..ROW },
    Case { name: "pipe-quantize-target-unknown", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "target = \"z80\"\n")))], args: pipe!(), first: "error: {in}: stage `q` (quantize): field `target`: `z80`: unknown target: use x86-64-v4, x86-64-v3, x86-64, aarch64, cortex-m4, cortex-m0 or riscv32", ..ROW },
    Case { name: "pipe-quantize-weight-format-unknown", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "weight_format = \"zip\"\n")))], args: pipe!(), first: "error: {in}: stage `q` (quantize): field `weight_format`: `zip`: unknown weight format: use auto, dense, smallest, blocked, dense-dot, dense-dsp, sparse, columns, packed or nm", ..ROW },
    Case { name: "pipe-quantize-backend-unknown", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "backend = \"tpu\"\n")))], args: pipe!(), first: "error: {in}: stage `q` (quantize): field `backend`: `tpu`; use x86, arm or fpga", ..ROW },
    Case { name: "pipe-quantize-dtype-unknown", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "dtype = \"int4\"\n")))], args: pipe!(), first: "error: {in}: stage `q` (quantize): field `dtype`: `int4`; use qint8 or quint8", ..ROW },
    Case { name: "pipe-quantize-dynamic-tanh", files: &[("p.toml", Src::T("[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"a.toml\"\n[[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"t\"\ndynamic = true\n")), ("a.toml", Src::T(concat!(head!(), "[[layers]]\ntype = \"dense\"\nname = \"fc1\"\nout = 8\n[[layers]]\ntype = \"tanh\"\n[[layers]]\ntype = \"dense\"\nout = 3\n")))], args: pipe!(), first: "error: {in}: stage `q` (quantize): field `dynamic`: layer 1 (#1 tanh): dynamic quantization supports only Dense and Conv1d layers (each optionally followed by ReLU or ReLU6), max, average and global average pooling, and flatten; quantize this model statically (tickq quantize without --mode dynamic)", ..ROW },
    Case { name: "pipe-export-format-unknown", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "[[stages]]\nname = \"e\"\nkind = \"export\"\nfrom = \"q\"\nformat = \"elf\"\n")))], args: pipe!(), first: "error: {in}: stage `e` (export): field `format`: `elf`; use blob, c-header or rust", ..ROW },
    Case { name: "pipe-export-vectors-negative", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "[[stages]]\nname = \"e\"\nkind = \"export\"\nfrom = \"q\"\nvectors = -1\n")))], args: pipe!(), first: "error: {in}: stage `e` (export): field `vectors`: -1 is out of range: expected a whole number from 0 to 4294967295", ..ROW },
    Case { name: "pipe-train-batch-size-float", files: &[("p.toml", Src::T(concat!(pt!(), "batch_size = 64.0\n")))], args: pipe!(), first: "error: {in}: stage `t` (train): field `batch_size`: 64.0 is a float; write a whole number from 1 to 16777216 as an integer (no decimal point or exponent)", ..ROW },
    Case { name: "pipe-train-lr-string", files: &[("p.toml", Src::T(concat!(pt!(), "lr = \"fast\"\n")))], args: pipe!(), first: "error: {in}: stage `t` (train): field `lr`: expected a finite number > 0, found a string", ..ROW },
    Case { name: "pipe-prune-n-fraction", files: &[("p.toml", Src::T(concat!(pt!(), "[[stages]]\nname = \"p\"\nkind = \"prune\"\nfrom = \"t\"\nmethod = \"nm\"\nn = 1.5\n")))], args: pipe!(), first: "error: {in}: stage `p` (prune): field `n`: `1.5` is not a whole number from 1 to 65535", ..ROW },
    Case { name: "pipe-stage-name-bad", files: &[("p.toml", Src::T("[[stages]]\nname = \"../up\"\nkind = \"train\"\narch = \"demo-mlp\"\n"))], args: pipe!(), first: "error: {in}: stage 1: field `name`: `../up` is not a usable directory name (use 1 to 128 letters, digits, `-`, `_` and `.`, not starting with `.`)", ..ROW },
    Case { name: "pipe-data-time-steps-negative", files: &[("p.toml", Src::T("[data]\ntime_steps = -1\n[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\n"))], args: pipe!(), first: "error: {in}: TOML parse error at line 2, column 14: invalid value: integer `-1`, expected usize", ..ROW },
    Case { name: "pipe-data-split-bad", files: &[("p.toml", Src::T("[data.split]\ntrain = 0.9\nvalidation = 0.2\ntest = 0.1\n[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\n"))], args: pipe!(), first: "error: {in}: TOML parse error at line 4, column 1: unknown field `test`, expected one of `train`, `validation`, `gap`", ..ROW },
    Case { name: "pipe-export-dynamic-int8", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "dynamic = true\n[[stages]]\nname = \"e\"\nkind = \"export\"\nfrom = \"q\"\nvectors = 5\nvector_input = \"int8\"\n")))], args: pipe!(), first: "error: {in}: stage `e` (export): fields `vectors`, `vector_input`: int8 test vectors cannot hold a dynamic blob's input: its int8 mantissas come with a per-sample exponent, which Session::run_quantized and the vector format do not take; export f32 vectors (--vector-input f32 or auto, vector_input = \"f32\" or \"auto\" in a pipeline)", ..ROW },
    Case { name: "pipe-export-vector-input-unknown", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "[[stages]]\nname = \"e\"\nkind = \"export\"\nfrom = \"q\"\nvectors = 5\nvector_input = \"int4\"\n")))], args: pipe!(), first: "error: {in}: stage `e` (export): field `vector_input`: `int4`; use auto, int8 or f32", ..ROW },
    Case { name: "pipe-export-symbol-bad", files: &[("p.toml", Src::T(concat!(pt!(), pq!(), "[[stages]]\nname = \"e\"\nkind = \"export\"\nfrom = \"q\"\nformat = \"c-header\"\nsymbol = \"!!!\"\n")))], args: pipe!(), first: "error: {in}: stage `e` (export): field `symbol`: symbol `!!!` has no letters or digits to build a C identifier from", ..ROW },
    Case { name: "pipe-data-time-steps-zero", files: &[("p.toml", Src::T("[data]\ntime_steps = 0\n[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\n"))], args: pipe!(), first: "error: {in}: [data]: invalid configuration: time_steps: 0 is out of range: expected a whole number from 1 to 65535", ..ROW },
    Case { name: "pipe-data-horizon-zero", files: &[("p.toml", Src::T("[data.labels]\nhorizon = 0\ndead_band = 0.125\n[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\n"))], args: pipe!(), first: "error: {in}: [data]: invalid configuration: labels.horizon: 0 is out of range: expected a whole number from 1 to 1000000000", ..ROW },
    Case { name: "pipe-data-dead-band-negative", files: &[("p.toml", Src::T("[data.labels]\nhorizon = 100\ndead_band = -1.0\n[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\n"))], args: pipe!(), first: "error: {in}: [data]: invalid configuration: labels.dead_band: -1 is out of range: expected a finite number >= 0", ..ROW },
    Case { name: "pipe-data-csv-missing", files: &[("p.toml", Src::T("[data]\ncsv = \"none.csv\"\n[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\nepochs = 1\n"))], args: pipe!(), first: "error: [data]: {dir}/none.csv: No such file or directory (os error 2)", ..ROW },
    Case { name: "pipe-out-is-file", files: &[("p.toml", Src::T(pt!())), ("f.txt", Src::T("x"))], args: "pipeline {in} --out {dir}/f.txt", first: "error: {dir}/f.txt: exists and is not a directory, so the stage directories and the comparison cannot be written into it; give a new path or a directory", ..ROW },
    Case { name: "pipe-config-too-large", files: &[("p.toml", Src::G(|_| { let mut t = pt!().as_bytes().to_vec(); t.extend(b"#"); t.extend(vec![b'x'; 2 << 20]); t }))], args: pipe!(), first: "error: {in}: larger than 1048576 bytes, the most tickq reads from a config file", ..ROW },
    Case { name: "pipe-config-dev-zero", args: "pipeline /dev/zero --out {out}", first: "error: /dev/zero: larger than 1048576 bytes, the most tickq reads from a config file", ..ROW },
    Case { name: "pipe-config-missing", args: "pipeline {dir}/none.toml --out {out}", first: "error: {dir}/none.toml: No such file or directory (os error 2)", ..ROW },
];

/// The placeholders of one row and what they stand for, longest value first (for showing a line back with
/// placeholders).
fn placeholders(fix: &Fix, case: &Case, dir: &Path) -> Vec<(&'static str, String)> {
    let uses = |p: &str| {
        case.args.contains(p)
            || case.first.contains(p)
            || case
                .files
                .iter()
                .any(|(_, src)| matches!(src, Src::T(t) if t.contains(p)))
    };
    let mut map = vec![
        ("{dir}", s(dir).to_string()),
        ("{out}", s(&dir.join("out")).to_string()),
        ("{csv}", s(&fix.csv).to_string()),
        ("{arch}", s(&fix.arch).to_string()),
    ];
    if let Some((name, _)) = case.files.first() {
        map.push(("{in}", s(&dir.join(name)).to_string()));
    }
    if uses("{ckpt}") || uses("{blob}") || uses("{dyn}") {
        let t = trained();
        map.push(("{ckpt}", s(&t.ckpt).to_string()));
        map.push(("{blob}", s(&t.blob).to_string()));
        map.push(("{dyn}", s(&t.dynamic).to_string()));
    }
    map.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    map
}

fn fill(text: &str, map: &[(&str, String)]) -> String {
    map.iter()
        .fold(text.to_string(), |t, (k, v)| t.replace(k, v))
}

fn unfill(text: &str, map: &[(&str, String)]) -> String {
    map.iter()
        .fold(text.to_string(), |t, (k, v)| t.replace(v.as_str(), k))
}

/// Runs one row; `Err` says what went wrong, with the line it got (placeholders put back).
fn run_case(fix: &Fix, case: &Case) -> Result<(), String> {
    let dir = scratch(&format!("bad-input-{}", case.name));
    let map = placeholders(fix, case, &dir);
    for (name, src) in case.files {
        let bytes = match src {
            Src::T(text) => fill(text, &map).into_bytes(),
            Src::G(make) => make(fix),
        };
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let args = fill(case.args, &map);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickq"));
    cmd.args(args.split_whitespace());
    cmd.env_remove("TICKQ_MEMORY_LIMIT");
    for (k, v) in case.env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("tickq runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The `error:` line and the `  caused by:` lines after it, read as one message joined with `: `.
    let mut lines = stderr.lines().skip_while(|l| !l.starts_with("error"));
    let mut line = lines.next().unwrap_or("").to_string();
    for cause in lines.map_while(|l| l.strip_prefix("  caused by: ")) {
        line.push_str(": ");
        line.push_str(cause);
    }
    let shown = unfill(&line, &map);
    let expected = fill(case.first, &map);
    let mut problems = Vec::new();
    if out.status.code() != Some(case.code) {
        problems.push(format!(
            "exit status {:?}, expected {}",
            out.status.code(),
            case.code
        ));
    }
    if stderr.contains("panicked") {
        problems.push("panicked".to_string());
    }
    if dir.join("out").exists() {
        problems.push("the refused run wrote {out}".to_string());
    }
    if line.is_empty() {
        problems.push("no `error` line".to_string());
    } else if !line.starts_with(&expected) {
        problems.push("first line differs".to_string());
    }
    if problems.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    } else {
        Err(format!(
            "{}: {}\n    got:      {shown}\n    expected: {}\n    stderr:   {}",
            case.name,
            problems.join(", "),
            case.first,
            unfill(stderr.trim_end(), &map).replace('\n', "\n              ")
        ))
    }
}

#[test]
fn every_bad_input_is_refused_with_its_message() {
    let (csv, arch) = fixtures();
    let fix = Fix {
        csv: csv.clone(),
        arch: arch.clone(),
    };
    let mut names: Vec<_> = CASES.iter().map(|c| c.name).collect();
    names.sort_unstable();
    let dup = names.windows(2).find(|w| w[0] == w[1]);
    assert!(dup.is_none(), "two rows are named {:?}", dup.map(|w| w[0]));
    assert!(
        CASES.iter().all(|c| !c.first.is_empty()),
        "a row expects nothing"
    );

    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let start = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = CASES.get(i) else { break };
                    if let Err(e) = run_case(&fix, case) {
                        failures.lock().unwrap().push((i, e));
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|(i, _)| *i);
    eprintln!(
        "bad-input corpus: {} rows ran in {:.1} s, {} failed",
        CASES.len(),
        start.elapsed().as_secs_f64(),
        failures.len()
    );
    let report: Vec<_> = failures.into_iter().map(|(_, e)| e).collect();
    assert!(
        report.is_empty(),
        "{} rows failed:\n{}",
        report.len(),
        report.join("\n")
    );
}
