//! Device exports and firmware bit-exactness.
//!
//! - The C header compiles with the system C compiler and holds exactly the blob's bytes.
//! - The Rust export compiles with rustc, is 16-byte aligned and holds exactly the blob's bytes.
//! - Each firmware example in `firmware-examples/` is built against a freshly exported blob and a few hundred
//!   test vectors, run under QEMU, and every int8 logit it prints must equal tickq-core's on this host.
//!
//! Without QEMU, a C compiler or a bare-metal target these tests print why and pass, unless `CI` is set, in
//! which case they fail (`.ci/run` installs everything).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tickq_core::{Model, Session};
use tickq_host::export::{self, Format, VectorInput};

use crate::support::{fixture, has_target, on_path, require, scratch};

/// Test vectors each firmware example runs.
const VECTORS: usize = 300;

/// How long one QEMU run may take.
const QEMU_TIMEOUT: Duration = Duration::from_secs(60);

fn blob() -> &'static [u8] {
    &fixture().quantized.blob
}

#[test]
fn c_header_compiles_and_holds_the_blob() {
    if !require(on_path("cc"), "the system C compiler `cc`") {
        return;
    }
    let model = Model::load(blob()).expect("fixture blob loads");
    let dir = scratch("export-c");
    export::write_export(&model, Format::CHeader, &dir.join("model.h"), None, None)
        .expect("header writes");
    let symbol = export::c_symbol(model.metadata().name()).expect("symbol");
    let program = format!(
        "#include <stdio.h>\n#include <stdint.h>\n#include \"model.h\"\n\
         _Static_assert(sizeof({symbol}_BLOB) == {symbol}_BLOB_LEN, \"length macro\");\n\
         int main(void) {{\n\
           if (((uintptr_t){symbol}_BLOB) % 16 != 0) return 2;\n\
           printf(\"%u %u\\n\", (unsigned){symbol}_ARENA_BYTES, (unsigned){symbol}_BLOB_CRC32);\n\
           fwrite({symbol}_BLOB, 1, {symbol}_BLOB_LEN, stdout);\n\
           return 0;\n}}\n"
    );
    std::fs::write(dir.join("main.c"), program).expect("write main.c");
    // `cc -c` alone first: the header must compile as a translation unit on its own.
    let status = Command::new("cc")
        .args(["-std=c11", "-c", "-x", "c"])
        .arg(dir.join("model.h"))
        .arg("-o")
        .arg(dir.join("model.o"))
        .status()
        .expect("cc runs");
    assert!(status.success(), "cc -c model.h failed");
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Werror", "-o"])
        .arg(dir.join("dump"))
        .arg(dir.join("main.c"))
        .status()
        .expect("cc runs");
    assert!(status.success(), "cc main.c failed");
    let out = Command::new(dir.join("dump")).output().expect("dump runs");
    assert!(out.status.success(), "the C array is not 16-byte aligned");
    let newline = out
        .stdout
        .iter()
        .position(|&b| b == b'\n')
        .expect("header line");
    let line = String::from_utf8_lossy(&out.stdout[..newline]).into_owned();
    assert_eq!(line, format!("{} {}", model.arena_bytes(), model.crc32()));
    assert!(
        out.stdout[newline + 1..] == *blob(),
        "the C array differs from the blob"
    );
}

#[test]
fn rust_export_round_trips() {
    let model = Model::load(blob()).expect("fixture blob loads");
    let dir = scratch("export-rust");
    let written = export::write_export(&model, Format::Rust, &dir.join("model.rs"), None, None)
        .expect("rust export writes");
    assert_eq!(
        written.files,
        vec![dir.join("model.blob"), dir.join("model.rs")]
    );
    assert!(std::fs::read(dir.join("model.blob")).expect("blob") == blob());
    let program = "mod model { include!(\"model.rs\"); }\n\
        use std::io::Write;\n\
        fn main() {\n\
            assert_eq!(model::BLOB.as_ptr() as usize % 16, 0, \"aligned\");\n\
            assert_eq!(model::BLOB.len(), model::BLOB_LEN);\n\
            println!(\"{} {} {} {}\", model::ARENA_BYTES, model::BLOB_CRC32, model::INPUT_LEN, model::CLASSES);\n\
            std::io::stdout().write_all(model::BLOB).unwrap();\n\
        }\n";
    std::fs::write(dir.join("main.rs"), program).expect("write main.rs");
    let status = Command::new("rustc")
        .args(["--edition", "2024", "-A", "dead_code", "-o"])
        .arg(dir.join("dump"))
        .arg(dir.join("main.rs"))
        .status()
        .expect("rustc runs");
    assert!(status.success(), "the Rust export does not compile");
    let out = Command::new(dir.join("dump")).output().expect("dump runs");
    assert!(out.status.success());
    let newline = out
        .stdout
        .iter()
        .position(|&b| b == b'\n')
        .expect("header line");
    let line = String::from_utf8_lossy(&out.stdout[..newline]).into_owned();
    assert_eq!(
        line,
        format!(
            "{} {} {} {}",
            model.arena_bytes(),
            model.crc32(),
            model.input_len(),
            model.classes()
        )
    );
    assert!(
        out.stdout[newline + 1..] == *blob(),
        "the Rust BLOB differs from the blob"
    );
}

#[test]
fn test_vectors_round_trip_and_match_the_core() {
    let model = Model::load(blob()).expect("fixture blob loads");
    let x = fixture().data.splits.test.x.view();
    let mut arena = vec![0u8; model.arena_bytes()];
    for kind in [VectorInput::Int8, VectorInput::F32] {
        let bytes = export::test_vectors(&model, x, 50, kind).expect("vectors");
        let (crc, vectors) = export::parse_test_vectors(&bytes).expect("parses");
        assert_eq!(crc, model.crc32());
        assert_eq!(vectors.len(), 50);
        let mut session = Session::new(&model, &mut arena).expect("arena");
        for v in &vectors {
            let logits = match kind {
                VectorInput::Int8 => session.run_quantized(&v.input_i8).logits().to_vec(),
                VectorInput::F32 => session.run(&v.input_f32).logits().to_vec(),
            };
            assert_eq!(logits, v.logits);
        }
    }
}

/// One firmware example: its folder, target, QEMU command line (before the ELF path) and binary name.
struct Example {
    dir: &'static str,
    target: &'static str,
    qemu: &'static [&'static str],
    bin: &'static str,
}

const EXAMPLES: &[Example] = &[
    Example {
        dir: "cortex-m4",
        target: "thumbv7em-none-eabihf",
        qemu: &[
            "qemu-system-arm",
            "-cpu",
            "cortex-m4",
            "-machine",
            "mps2-an386",
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native",
            "-icount",
            "shift=6",
            "-kernel",
        ],
        bin: "tickq-fw-cortex-m4",
    },
    Example {
        dir: "cortex-m0",
        target: "thumbv6m-none-eabi",
        qemu: &[
            "qemu-system-arm",
            "-cpu",
            "cortex-m0",
            "-machine",
            "microbit",
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
        ],
        bin: "tickq-fw-cortex-m0",
    },
    Example {
        dir: "riscv32imc",
        target: "riscv32imc-unknown-none-elf",
        qemu: &[
            "qemu-system-riscv32",
            "-machine",
            "virt",
            "-cpu",
            "rv32",
            "-nographic",
            "-bios",
            "none",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
        ],
        bin: "tickq-fw-riscv32imc",
    },
];

/// Builds `example` against `model_rs` and `vectors` in its own target dir; returns the ELF path.
fn build(example: &Example, model_rs: &Path, vectors: &Path, opt_level: Option<&str>) -> PathBuf {
    build_with(example, model_rs, vectors, opt_level, None, None)
}

/// An example's streaming binary (`--features stream`), built against `model_rs` and the trade vectors
/// `trades`.
fn build_streaming(example: &Example, model_rs: &Path, vectors: &Path, trades: &Path) -> PathBuf {
    let elf = build_with(
        example,
        model_rs,
        vectors,
        None,
        Some("stream"),
        Some(trades),
    );
    elf.with_file_name(format!("{}-stream", example.bin))
}

/// [`build`] with a cargo feature of the example turned on (in a target dir of its own), and the trade vectors
/// the streaming binary embeds (`TICKQ_TRADES`) when given.
fn build_with(
    example: &Example,
    model_rs: &Path,
    vectors: &Path,
    opt_level: Option<&str>,
    feature: Option<&str>,
    trades: Option<&Path>,
) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let suffix = opt_level.map_or(String::new(), |o| format!("-o{o}"))
        + &feature.map_or(String::new(), |f| format!("-{f}"));
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("firmware")
        .join(format!("{}{suffix}", example.dir));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root.join("firmware-examples").join(example.dir))
        .args(["build", "--release", "--quiet"])
        .args(feature.map(|f| ["--features", f]).into_iter().flatten())
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("TICKQ_MODEL", model_rs)
        .env("TICKQ_VECTORS", vectors);
    match trades {
        Some(trades) => cmd.env("TICKQ_TRADES", trades),
        None => cmd.env_remove("TICKQ_TRADES"),
    };
    // The outer cargo's settings would cross-compile or re-flag the nested build: drop them.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "CARGO_MAKEFLAGS",
        "CARGO_PROFILE_RELEASE_OPT_LEVEL",
    ] {
        cmd.env_remove(var);
    }
    if let Some(o) = opt_level {
        cmd.env("CARGO_PROFILE_RELEASE_OPT_LEVEL", o);
    }
    let status = cmd.status().expect("cargo runs");
    assert!(
        status.success(),
        "{}: cargo build --release failed",
        example.dir
    );
    target_dir
        .join(example.target)
        .join("release")
        .join(example.bin)
}

/// Runs `elf` under QEMU with a timeout; returns (success, stdout).
fn run_qemu(example: &Example, elf: &Path) -> (bool, String) {
    let mut child = Command::new(example.qemu[0])
        .args(&example.qemu[1..])
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("qemu starts");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait on qemu") {
            break status;
        }
        if start.elapsed() > QEMU_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{}: QEMU ran past {QEMU_TIMEOUT:?}", example.dir);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().expect("reader").expect("utf-8 output");
    (status.success(), out)
}

/// The `vec I signal S logits A,B,C ...` lines, as (index, signal, logits).
fn parse_vec_lines(out: &str) -> Vec<(usize, usize, Vec<i8>)> {
    out.lines()
        .filter_map(|line| {
            let mut w = line.split_whitespace();
            (w.next()? == "vec").then_some(())?;
            let i = w.next()?.parse().ok()?;
            (w.next()? == "signal").then_some(())?;
            let s = w.next()?.parse().ok()?;
            (w.next()? == "logits").then_some(())?;
            let logits = w
                .next()?
                .split(',')
                .map(|v| v.parse().ok())
                .collect::<Option<Vec<i8>>>()?;
            Some((i, s, logits))
        })
        .collect()
}

/// `key=value` from the line starting with `prefix`.
fn field(out: &str, prefix: &str, key: &str) -> Option<u64> {
    let line = out.lines().find(|l| l.starts_with(prefix))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
        .parse()
        .ok()
}

/// Whether QEMU and the Rust target of every example in `examples` are installed (each missing one reported).
fn tools_present(examples: &[Example]) -> bool {
    let mut ok = true;
    for (i, example) in examples.iter().enumerate() {
        // Two examples share qemu-system-arm: one line for it.
        if examples[..i].iter().all(|e| e.qemu[0] != example.qemu[0]) {
            ok &= require(on_path(example.qemu[0]), example.qemu[0]);
        }
        ok &= require(
            has_target(example.target),
            &format!("the Rust target {} (rustup target add)", example.target),
        );
    }
    ok
}

/// Exports `blob` as a Rust source plus `n` int8 test vectors from `rows` into a scratch folder.
fn export_for_firmware(
    name: &str,
    blob: &[u8],
    rows: ndarray::ArrayView2<'_, f32>,
    n: usize,
) -> (PathBuf, PathBuf) {
    let model = Model::load(blob).expect("blob loads");
    let vectors = export::test_vectors(&model, rows, n, VectorInput::Int8).expect("vectors export");
    let dir = scratch(name);
    let model_rs = dir.join("model.rs");
    export::write_export(&model, Format::Rust, &model_rs, None, Some(&vectors))
        .expect("export writes");
    (model_rs, dir.join("model.tqv"))
}

/// The fixture's model re-encoded with every weighted layer in `format`.
fn encoded(format: tickq_core::encode::WeightFormat) -> Vec<u8> {
    let options = tickq_core::encode::EncodeOptions::format(format);
    tickq_core::encode::encode_with(&fixture().quantized.spec, &options)
        .expect("the fixture encodes")
}

/// The fixture's model re-encoded with every Dense layer in the `dense-dsp` layout, which the Cortex-M4 runs
/// with its `SMLAD` assembly and the other targets with the portable kernel.
fn dsp_blob() -> Vec<u8> {
    encoded(tickq_core::encode::WeightFormat::DenseDsp)
}

/// The fixture's model in the blocked layout (weight format 0), which every example's engine reads.
fn blocked_blob() -> Vec<u8> {
    encoded(tickq_core::encode::WeightFormat::Blocked)
}

/// Trades the streaming firmware replays.
const STREAM_TRADES: usize = 400;

/// The Cortex-M4 and the RISC-V core (no FPU: the feature engine's f32 arithmetic in software) stream raw trades
/// through the fixture's model in the `dense-dsp` layout (what `--target cortex-m4` picks) and its feature
/// spec, with `StreamSession` (the feature engine, then the model), and every signal and logit equals the host
/// pipeline's: the training code's features, then tickq-core on this machine. Prints the Cortex-M4's
/// instructions per trade for docs/FIRMWARE.md.
#[test]
fn firmware_streams_raw_trades_bit_for_bit() {
    if !tools_present(EXAMPLES) {
        return;
    }
    let streaming = EXAMPLES.iter().filter(|e| e.dir != "cortex-m0");
    let blob = dsp_blob();
    let model = Model::load(&blob).expect("dense-dsp blob loads");
    assert!(
        model.feature_spec().is_some(),
        "the fixture's blob carries its feature spec"
    );
    let (model_rs, vectors) = export_for_firmware(
        "firmware-stream",
        &blob,
        fixture().data.splits.test.x.view(),
        20,
    );
    let trades = tickq_host::data::load_trades(
        &tickq_host::data::default_data_path().expect("bundled data"),
    )
    .expect("bundled data loads");
    let start = fixture().data.splits.test.tick_index[0];
    let bytes = tickq_host::trade_vectors::trade_vectors(&model, &trades[start..], STREAM_TRADES)
        .expect("trade vectors");
    let (_, expected) = tickq_host::trade_vectors::parse_trade_vectors(&bytes).expect("parses");
    let signals = expected.iter().filter(|v| v.logits.is_some()).count();
    assert!(signals > 0, "the slice must reach past the warm-up");
    let trades_path = model_rs.with_extension("tqt");
    std::fs::write(&trades_path, &bytes).expect("trades write");
    for example in streaming {
        let elf = build_streaming(example, &model_rs, &vectors, &trades_path);
        let (ok, out) = run_qemu(example, &elf);
        assert!(ok, "{}: {out}", example.dir);
        assert_eq!(
            field(&out, "stream_summary", "trades"),
            Some(STREAM_TRADES as u64),
            "{out}"
        );
        assert_eq!(
            field(&out, "stream_summary", "signals"),
            Some(signals as u64),
            "{out}"
        );
        assert_eq!(
            field(&out, "stream_summary", "mismatches"),
            Some(0),
            "{out}"
        );
        // Every printed signal line is the host's.
        let printed: Vec<(usize, Vec<i8>)> = out
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("trade ")?;
                let (index, rest) = rest.split_once(' ')?;
                let logits = rest.split("logits ").nth(1)?.split(' ').next()?;
                Some((
                    index.parse().ok()?,
                    logits
                        .split(',')
                        .map(|v| v.parse().expect("logit"))
                        .collect(),
                ))
            })
            .collect();
        assert_eq!(printed.len(), signals, "{}: {out}", example.dir);
        for (index, logits) in &printed {
            assert_eq!(
                expected[*index].logits.as_ref(),
                Some(logits),
                "{}: trade {index}",
                example.dir
            );
        }
        if example.dir == "cortex-m4" {
            // Instructions per trade under `-icount shift=6`: ticks * 40 / 64 (the other example's calibration).
            let per =
                |key: &str| field(&out, "stream_summary", key).expect("summary field") * 40 / 64;
            println!(
                "cortex-m4 stream: {STREAM_TRADES} trades, {signals} signals, instructions per trade min {} median {} max {} (total {} over all trades); tickq-core `.text` {} bytes",
                per("ticks_min"),
                per("ticks_median"),
                per("ticks_max"),
                per("ticks_total"),
                engine_text(&elf).map_or("?".to_owned(), |b| b.to_string())
            );
        }
    }
}

/// Every example, bit-exact with the host on the fixture's model in the blocked layout and in the `dense-dsp`
/// layout (the Cortex-M4's `SMLAD` assembly, the portable kernel elsewhere); and the examples built with the
/// whole engine (Cortex-M0, riscv32imc) also in the `dense-dot` layout, through its portable kernel on 32-bit
/// cores without an FPU, against the host's SIMD kernels.
#[test]
fn firmware_matches_the_host_bit_for_bit() {
    if !tools_present(EXAMPLES) {
        return;
    }
    check_bit_exact("firmware-vectors", &blocked_blob(), EXAMPLES);
    let dot = encoded(tickq_core::encode::WeightFormat::DenseDot);
    let whole_engine: Vec<&Example> = EXAMPLES.iter().filter(|e| e.dir != "cortex-m4").collect();
    check_bit_exact("firmware-vectors-dot", &dot, whole_engine.iter().copied());
    let dsp = dsp_blob();
    let model = Model::load(&dsp).expect("dense-dsp blob loads");
    assert!(
        model
            .layers()
            .filter(|l| l.kind == tickq_core::LayerKind::Dense)
            .all(|l| l.weight_format == Some(tickq_core::WeightLayout::DenseDsp))
    );
    check_bit_exact("firmware-vectors-dsp", &dsp, EXAMPLES);
}

/// Exports `blob` with 300 test vectors, runs every example on them under QEMU and compares every logit and
/// signal with tickq-core on this host.
fn check_bit_exact<'e>(name: &str, blob: &[u8], examples: impl IntoIterator<Item = &'e Example>) {
    let model = Model::load(blob).expect("blob loads");
    let (model_rs, vectors_path) =
        export_for_firmware(name, blob, fixture().data.splits.test.x.view(), VECTORS);
    let (_, vectors) =
        export::parse_test_vectors(&std::fs::read(&vectors_path).expect("vectors read"))
            .expect("vectors parse");
    assert_eq!(vectors.len(), VECTORS);
    // The host side: tickq-core on this machine, from the same int8 inputs.
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut session = Session::new(&model, &mut arena).expect("arena");
    let host: Vec<(usize, Vec<i8>)> = vectors
        .iter()
        .map(|v| {
            let p = session.run_quantized(&v.input_i8);
            (p.signal(), p.logits().to_vec())
        })
        .collect();

    for example in examples {
        let started = Instant::now();
        let elf = build(example, &model_rs, &vectors_path, None);
        let built = started.elapsed();
        let (success, out) = run_qemu(example, &elf);
        let lines = parse_vec_lines(&out);
        assert_eq!(
            lines.len(),
            VECTORS,
            "{}: expected {VECTORS} vec lines, output:\n{out}",
            example.dir
        );
        let mut mismatches = 0;
        for ((i, signal, logits), (k, (host_signal, host_logits))) in
            lines.iter().zip(host.iter().enumerate())
        {
            assert_eq!(*i, k, "{}: vector order", example.dir);
            mismatches += logits
                .iter()
                .zip(host_logits)
                .filter(|(a, b)| a != b)
                .count()
                + logits.len().abs_diff(host_logits.len());
            mismatches += usize::from(signal != host_signal);
        }
        assert_eq!(
            mismatches, 0,
            "{}: logits differ from the host",
            example.dir
        );
        assert!(
            success,
            "{}: the firmware reported failure:\n{out}",
            example.dir
        );
        if example.dir == "cortex-m4" {
            // The same vectors on a copy of the blob one byte past a word boundary (the dense-dsp kernel's
            // unaligned path).
            assert_eq!(
                field(&out, "unaligned", "mismatches"),
                Some(0),
                "cortex-m4: unaligned blob:\n{out}"
            );
        }
        eprintln!(
            "{}: {VECTORS} vectors bit-exact (build {:.1} s, run {:.1} s); stack peak {} of {} bytes",
            example.dir,
            built.as_secs_f64(),
            (started.elapsed() - built).as_secs_f64(),
            field(&out, "summary", "stack_run").unwrap_or(0),
            field(&out, "summary", "stack_available").unwrap_or(0),
        );
    }
}

/// The Cortex-M4 `dense-dsp` kernel on shapes the demo does not have: rows of 19 and 37 inputs (5 and 10 word
/// steps, so the 8-times unrolled loop is entered mid-way, with partial last words), groups followed by plain
/// rows, and a 10-input row (3 steps), which the plain fallback takes; bit-exact with the host, also on the
/// unaligned copy of the blob.
#[test]
fn cortex_m4_dense_dsp_on_odd_shapes() {
    // The Cortex-M4 example only.
    if !tools_present(&EXAMPLES[..1]) {
        return;
    }
    const ARCH: &str = r#"
name = "odd"
classes = 3
[input]
time_steps = 1
features = 19
[[layers]]
type = "dense"
out = 37
[[layers]]
type = "relu"
[[layers]]
type = "dense"
out = 10
[[layers]]
type = "relu"
[[layers]]
type = "dense"
out = 3
"#;
    let (q, inputs) = random_blob(ARCH);
    let options =
        tickq_core::encode::EncodeOptions::format(tickq_core::encode::WeightFormat::DenseDsp);
    let blob = tickq_core::encode::encode_with(&q.spec, &options).expect("dense-dsp encodes");
    let model = Model::load(&blob).expect("loads");
    // The assembly requantizes shifts of 33 to 62 (ratios below 1/4); the two wide layers must have them, or
    // this would only test the fallback.
    let shifts: Vec<Vec<u8>> = q
        .spec
        .layers
        .iter()
        .filter_map(|l| match &l.op {
            tickq_core::encode::OpSpec::Dense { requant, .. } => {
                Some(requant.iter().map(|m| m.right_shift()).collect())
            }
            _ => None,
        })
        .collect();
    eprintln!("shifts {shifts:?}");
    for layer in &shifts[..2] {
        assert!(layer.iter().all(|s| (33..=62).contains(s)), "{shifts:?}");
    }
    let (model_rs, vectors_path) =
        export_for_firmware("firmware-odd-dsp", &blob, inputs.view(), 64);
    let (_, vectors) =
        export::parse_test_vectors(&std::fs::read(&vectors_path).expect("vectors read"))
            .expect("vectors parse");
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut session = Session::new(&model, &mut arena).expect("arena");
    let m4 = &EXAMPLES[0];
    let elf = build(m4, &model_rs, &vectors_path, None);
    let (success, out) = run_qemu(m4, &elf);
    let lines = parse_vec_lines(&out);
    assert_eq!(lines.len(), vectors.len(), "{out}");
    for ((i, signal, logits), v) in lines.iter().zip(&vectors) {
        let p = session.run_quantized(&v.input_i8);
        assert_eq!(
            (*signal, logits.as_slice()),
            (p.signal(), p.logits()),
            "vector {i}"
        );
    }
    assert!(success, "{out}");
    assert_eq!(field(&out, "unaligned", "mismatches"), Some(0), "{out}");
}

/// A blob of `arch_text` with seeded random weights (latency depends on the shape, not the values), and
/// seeded random inputs; as in `benches/tick_to_signal.rs`.
fn random_blob(arch_text: &str) -> (tickq_host::quant::QuantizedModel, ndarray::Array2<f32>) {
    use rand::{RngExt, SeedableRng};
    use tickq_host::model::{Architecture, Sequential};
    use tickq_host::quant::{ExportInfo, QuantConfig, static_quantize};
    let arch = Architecture::from_toml_str(arch_text).expect("architecture");
    let features = arch.input.features;
    let width = arch.input.time_steps * features;
    let model = Sequential::new(arch, 11).expect("model builds");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let inputs = ndarray::Array2::from_shape_fn((256, width), |_| {
        (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * 1.7
    });
    let info = ExportInfo {
        name: model.arch.name.clone(),
        feature_names: (0..features).map(|i| format!("f{i}")).collect(),
        label_names: vec!["down".into(), "flat".into(), "up".into()],
        mean: vec![0.0; features],
        std: vec![1.0; features],
        data_hash: [0; 32],
        feature_spec: None,
    };
    let q =
        static_quantize(&model, inputs.view(), &info, &QuantConfig::default()).expect("quantizes");
    (q, inputs)
}

/// The numbers of docs/FIRMWARE.md: instructions per inference on the Cortex-M4 (QEMU `-icount shift=6`,
/// SysTick, calibrated against a loop of known length) for the demo model and the mlp shape at opt-level
/// "s" and 3, and the firmware section sizes. Run with
/// `cargo test --release --test tests firmware::footprint_and_instruction_counts -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement for docs/FIRMWARE.md, not a check; needs QEMU"]
fn footprint_and_instruction_counts() {
    if !tools_present(EXAMPLES) {
        return;
    }
    let m4 = &EXAMPLES[0];
    let (mlp, mlp_inputs) = random_blob(tickq_host::shapes::REF_MLP);
    let dsp = |spec: &tickq_core::encode::ModelSpec| {
        let options =
            tickq_core::encode::EncodeOptions::format(tickq_core::encode::WeightFormat::DenseDsp);
        tickq_core::encode::encode_with(spec, &options).expect("dense-dsp encodes")
    };
    let demo_rows = &fixture().data.splits.test.x;
    let cases = [
        ("demo", "blocked", blocked_blob(), demo_rows),
        ("demo", "dense-dsp", dsp_blob(), demo_rows),
        (
            "mlp",
            "blocked",
            tickq_core::encode::encode_with(
                &mlp.spec,
                &tickq_core::encode::EncodeOptions::format(
                    tickq_core::encode::WeightFormat::Blocked,
                ),
            )
            .expect("blocked encodes"),
            &mlp_inputs,
        ),
        ("mlp", "dense-dsp", dsp(&mlp.spec), &mlp_inputs),
    ];
    println!(
        "| model | weight format | opt-level | MACs (Dense) | instructions / inference | per MAC | Dense layers: instructions | per Dense MAC | engine `.text` |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, format, blob, rows) in cases {
        let model = Model::load(&blob).expect("loads");
        let macs: u64 = model.layers().map(|l| l.macs).sum();
        let dense: Vec<bool> = model
            .layers()
            .map(|l| l.kind == tickq_core::LayerKind::Dense)
            .collect();
        let dense_macs: u64 = model
            .layers()
            .filter(|l| l.kind == tickq_core::LayerKind::Dense)
            .map(|l| l.macs)
            .sum();
        let (model_rs, vectors) =
            export_for_firmware(&format!("measure-{name}-{format}"), &blob, rows.view(), 20);
        for opt in ["s", "3"] {
            let elf = build(m4, &model_rs, &vectors, Some(opt));
            let (ok, out) = run_qemu(m4, &elf);
            assert!(ok, "{out}");
            let calib_ticks = field(&out, "calib", "ticks").expect("calib line") as f64;
            let calib_instr = field(&out, "calib", "delay_instructions").expect("calib") as f64;
            let per_tick = calib_instr / calib_ticks;
            let ticks = field(&out, "summary", "ticks_min").expect("ticks") as f64;
            let instructions = ticks * per_tick;
            let layer_ticks = layer_ticks(&out);
            assert_eq!(layer_ticks.len(), dense.len(), "one tick count per layer");
            let dense_ticks: u64 = layer_ticks
                .iter()
                .zip(&dense)
                .filter(|(_, d)| **d)
                .map(|(t, _)| t)
                .sum();
            let dense_instructions = dense_ticks as f64 * per_tick;
            println!(
                "| {name} | {format} | {opt} | {macs} ({dense_macs}) | {instructions:.0} | {:.2} | {dense_instructions:.0} | {:.2} | {} |",
                instructions / macs as f64,
                dense_instructions / dense_macs as f64,
                engine_text(&elf).map_or("?".to_owned(), |b| b.to_string()),
            );
            println!(
                "<!-- {name} {format} opt {opt}: per layer instructions {:?}; ticks/instruction {:.4}; stack_load {:?} stack_run {:?}; arena {} model {} -->",
                layer_ticks
                    .iter()
                    .map(|&t| (t as f64 * per_tick).round() as u64)
                    .collect::<Vec<_>>(),
                calib_ticks / calib_instr,
                field(&out, "summary", "stack_load"),
                field(&out, "summary", "stack_run"),
                model.arena_bytes(),
                blob.len()
            );
        }
    }
    // The example builds the lean engine (tickq-core without `sparse-formats` and `dynamic`); the same firmware
    // with the whole engine, for its size (and a check that it still runs the demo bit-exactly).
    let (model_rs, vectors) =
        export_for_firmware("measure-full-engine", &dsp_blob(), demo_rows.view(), 20);
    let elf = build_with(
        m4,
        &model_rs,
        &vectors,
        Some("s"),
        Some("full-engine"),
        None,
    );
    let (ok, out) = run_qemu(m4, &elf);
    assert!(ok, "{out}");
    println!(
        "engine `.text` at opt-level s: lean (the example's default) as above, every feature (`--features full-engine`) {}",
        engine_text(&elf).map_or("?".to_owned(), |b| b.to_string())
    );
}

/// The `layers ticks_min=a,b,...` line of the Cortex-M4 example: each layer's fewest ticks over the vectors.
fn layer_ticks(out: &str) -> Vec<u64> {
    out.lines()
        .find_map(|l| l.strip_prefix("layers ticks_min="))
        .expect("layers line")
        .split(',')
        .map(|t| t.trim().parse().expect("tick count"))
        .collect()
}

/// The bytes of `.text` in symbols of tickq-core (`llvm-nm -S -C`), or `None` without `llvm-nm`.
fn engine_text(elf: &Path) -> Option<u64> {
    let out = Command::new("llvm-nm")
        .args(["-S", "-C"])
        .arg(elf)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut total = 0;
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let (_, size, kind, name) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if kind.eq_ignore_ascii_case("t") && name.contains("tickq_core") {
            total += u64::from_str_radix(size, 16).ok()?;
        }
    }
    Some(total)
}
