//! The data settings on the command line and what the commands that are given a checkpoint or a blob rebuild:
//! a checkpoint trained with non-default settings (`--horizon 50 --time-steps 4 --session-gap-ms 600000
//! --return-lags-trades 1,5,20,50`) and its blob, through `tickq export --vectors` / `--trade-vectors`,
//! `tickq bench --data`, `tickq eval` and `tickq replay`; the label warnings and the majority baseline of
//! `tickq train`; the session error; and each new flag's bad value.

use std::path::PathBuf;
use std::sync::OnceLock;

mod common;

use common::{fails, fixtures, json, ok, ok_stderr, s, scratch};
use tickq_host::steps;

/// 4 time steps of the 29 features, flattened into the tiny MLP.
const TINY4_ARCH: &str = "name = \"tiny4\"\nclasses = 3\n[input]\ntime_steps = 4\nfeatures = 29\n\
    [[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"dense\"\nout = 16\n[[layers]]\ntype = \"relu\"\n\
    [[layers]]\ntype = \"dense\"\nout = 3\n";

/// The settings the checkpoint is trained with: every one differs from the default, and the lag list keeps 29
/// features with other names (`ret_50t` for `ret_100t`), so data built with the defaults does not fit the blob.
const SETTINGS: &[&str] = &[
    "--horizon",
    "50",
    "--time-steps",
    "4",
    "--session-gap-ms",
    "600000",
    "--return-lags-trades",
    "1,5,20,50",
];

struct Trained {
    dir: PathBuf,
    ckpt: PathBuf,
    blob: PathBuf,
    arch: PathBuf,
}

fn trained() -> &'static Trained {
    static ONCE: OnceLock<Trained> = OnceLock::new();
    ONCE.get_or_init(|| {
        let (csv, _) = fixtures();
        let dir = scratch("data-settings");
        let arch = dir.join("tiny4.toml");
        std::fs::write(&arch, TINY4_ARCH).unwrap();
        let ckpt = dir.join("ckpt");
        let mut args = vec![
            "train",
            "--arch",
            s(&arch),
            "--data",
            s(csv),
            "--out",
            s(&ckpt),
            "--epochs",
            "1",
            "--device",
            "cpu",
        ];
        args.extend(SETTINGS);
        ok(&args);
        let blob = dir.join("model.blob");
        ok(&["quantize", s(&ckpt), "--data", s(csv), "--out", s(&blob)]);
        Trained {
            dir,
            ckpt,
            blob,
            arch,
        }
    })
}

/// The checkpoint's data rebuilt by the library from its `preprocess.json`.
fn checkpoint_data() -> steps::PreparedData {
    let (csv, _) = fixtures();
    let (_, pre) = steps::load_checkpoint(&trained().ckpt).unwrap();
    assert_eq!(pre.dataset.time_steps, 4);
    assert_eq!(pre.dataset.labels.horizon, 50);
    assert_eq!(pre.dataset.features.session_gap_ms, 600_000);
    assert_eq!(pre.dataset.features.return_lags_trades, [1, 5, 20, 50]);
    steps::prepare_data(csv, &pre.dataset, Some(&pre.split)).unwrap()
}

#[test]
fn export_vectors_come_from_the_blobs_test_split() {
    let t = trained();
    let (csv, _) = fixtures();
    let out = t.dir.join("export-vectors.h");
    // With the default data settings the features (`ret_100t`) are not the blob's and export refused.
    ok(&[
        "export",
        s(&t.blob),
        "--format",
        "c-header",
        "--vectors",
        "3",
        "--vector-input",
        "f32",
        "--data",
        s(csv),
        "--out",
        s(&out),
    ]);
    let bytes = std::fs::read(out.with_extension("tqv")).unwrap();
    let (_, vectors) = tickq_host::export::parse_test_vectors(&bytes).expect("a TQV file");
    assert_eq!(vectors.len(), 3);
    // The vectors are samples of the checkpoint's own test split, spread evenly over it.
    let test = checkpoint_data().splits.test;
    let rows = test.x.nrows();
    for (n, v) in vectors.iter().enumerate() {
        assert_eq!(v.input_f32, test.x.row(n * rows / 3).to_vec(), "vector {n}");
    }
}

#[test]
fn export_trade_vectors_start_at_the_checkpoints_test_split() {
    let t = trained();
    let (csv, _) = fixtures();
    let out = t.dir.join("export-trades.blob");
    ok(&[
        "export",
        s(&t.blob),
        "--format",
        "blob",
        "--trade-vectors",
        "800",
        "--data",
        s(csv),
        "--out",
        s(&out),
    ]);
    let bytes = std::fs::read(out.with_extension("tqt")).unwrap();
    let (_, vectors) = tickq_host::trade_vectors::parse_trade_vectors(&bytes).expect("a TQT file");
    // With the default horizon (100) and its split gap, the test split, and so the first trade, moved.
    let data = checkpoint_data();
    let trades = tickq_host::data::load_trades(csv).unwrap();
    let start = data.splits.test.tick_index[0];
    assert_eq!(vectors[0].trade.time_ms, trades[start].timestamp_ms);
    assert!(vectors.iter().any(|v| v.logits.is_some()));
}

#[test]
fn bench_data_times_the_checkpoints_test_split() {
    let t = trained();
    let (csv, _) = fixtures();
    // With the default data settings the features did not fit and bench fell back to random inputs.
    let stderr = ok_stderr(&["bench", s(&t.blob), "--data", s(csv), "--calls", "100"]);
    let test = checkpoint_data().splits.test.y.len();
    assert!(
        stderr.contains(&format!(
            "timing 100 single-sample calls on {test} test-split samples of"
        )),
        "{stderr}"
    );
    // Without the sidecar the blob's own feature spec and window still fit; labels and split are the defaults.
    let bare = t.dir.join("bare.blob");
    std::fs::copy(&t.blob, &bare).unwrap();
    let stderr = ok_stderr(&["bench", s(&bare), "--data", s(csv), "--calls", "100"]);
    assert!(stderr.contains("test-split samples of"), "{stderr}");
}

#[test]
fn eval_rebuilds_the_checkpoints_split() {
    let t = trained();
    let (csv, _) = fixtures();
    let out = t.dir.join("eval");
    ok(&[
        "eval",
        s(&t.ckpt),
        "--blob",
        s(&t.blob),
        "--data",
        s(csv),
        "--out",
        s(&out),
        "--latency-calls",
        "100",
        "--device",
        "cpu",
    ]);
    let report = json(&out.join("report.json"));
    let data = checkpoint_data();
    let samples = [
        data.splits.train.y.len(),
        data.splits.validation.y.len(),
        data.splits.test.y.len(),
    ];
    assert_eq!(report["data"]["samples"], serde_json::json!(samples));
    assert_eq!(report["data"]["time_steps"], 4);
    assert!(report["warnings"].is_array());
}

#[test]
fn replay_streams_the_blobs_feature_spec() {
    let t = trained();
    let (csv, _) = fixtures();
    let text = ok(&["replay", s(&t.blob), "--data", s(csv)]);
    // The 600 s session gap and the 50-trade lag: every trade past the warm-up gives a signal, none differs.
    assert!(text.contains("15000 trades replayed"), "{text}");
    assert!(text.contains(" 0 mismatches"), "{text}");
}

/// `tickq train` with a dead band that leaves almost every move flat warns, naming split, class and shares, and
/// its summary line gives the majority-class baseline beside the accuracy.
#[test]
fn train_warns_about_degenerate_labels_and_prints_the_baseline() {
    let (csv, _) = fixtures();
    let t = trained();
    let dir = scratch("data-settings-warn");
    let out = dir.join("ckpt");
    let args = [
        "train",
        "--arch",
        s(&t.arch),
        "--data",
        s(csv),
        "--out",
        s(&out),
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--time-steps",
        "4",
        "--dead-band",
        "100",
    ];
    let output = common::tickq(&args);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for split in ["train", "validation", "test"] {
        for line in [
            format!(
                "warning: the {split} split has no `down` sample: class shares down 0.0 %, flat 100.0 %, up 0.0 %"
            ),
            format!(
                "warning: the {split} split is 100.0 % `flat` (more than 80 %): class shares down 0.0 %, flat 100.0 %, up 0.0 %; a model that always says `flat` scores that"
            ),
        ] {
            assert!(stderr.lines().any(|l| l == line), "{line}\n{stderr}");
        }
    }
    assert!(
        stdout.contains(
            "f32 test accuracy 100.00 % (majority-class baseline 100.00 %, always `flat`)"
        ),
        "{stdout}"
    );
    // tickq eval writes them into report.md and report.json.
    let blob = dir.join("flat.blob");
    ok(&["quantize", s(&out), "--data", s(csv), "--out", s(&blob)]);
    let report = dir.join("report");
    let stderr = ok_stderr(&[
        "eval",
        s(&out),
        "--blob",
        s(&blob),
        "--data",
        s(csv),
        "--out",
        s(&report),
        "--latency-calls",
        "100",
        "--device",
        "cpu",
    ]);
    assert!(
        stderr.contains("warning: the test split has no `up` sample: class shares down 0.0 %, flat 100.0 %, up 0.0 %"),
        "{stderr}"
    );
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(
        md.contains("## Warnings\n\n- the train split has no `down` sample: class shares down 0.0 %, flat 100.0 %, up 0.0 %\n"),
        "{md}"
    );
    let warnings = &json(&report.join("report.json"))["warnings"];
    assert_eq!(warnings.as_array().map(Vec::len), Some(9), "{warnings}");
    assert_eq!(warnings[0]["kind"], "empty_class");
    assert_eq!(warnings[0]["split"], "train");
    assert_eq!(warnings[0]["class"], "down");
    assert_eq!(warnings[1]["kind"], "majority");
    assert_eq!(warnings[1]["share"], 1.0);
    // The default labels of the same data: no warning.
    let calm = dir.join("calm");
    let stderr = ok_stderr(&[
        "train",
        "--arch",
        s(&t.arch),
        "--data",
        s(csv),
        "--out",
        s(&calm),
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--time-steps",
        "4",
    ]);
    assert!(!stderr.contains("warning: "), "{stderr}");
}

#[test]
fn too_few_samples_names_the_session_gap_and_how_to_change_it() {
    let (csv, _) = fixtures();
    let t = trained();
    let out = scratch("data-settings-gap").join("ckpt");
    let err = fails(&[
        "train",
        "--arch",
        s(&t.arch),
        "--data",
        s(csv),
        "--out",
        s(&out),
        "--time-steps",
        "4",
        "--session-gap-ms",
        "1",
    ]);
    assert!(
        err.contains(
            "error: too few samples: 0 usable, at least 1 needed (15000 trades in 4386 session(s); each session \
             needs 100 trades and 60000 ms of warm-up, then 4 time steps and 100 trades of label horizon; a gap \
             of more than 1 ms between trades starts a session (set it with --session-gap-ms or session_gap_ms \
             in [data.features]))"
        ),
        "{err}"
    );
}

/// Each new flag's bad value, as clap reports it.
#[test]
fn bad_data_flags_name_the_flag_and_the_range() {
    let (csv, arch) = fixtures();
    let out = scratch("data-settings-bad").join("ckpt");
    let base = [
        "train",
        "--arch",
        s(arch),
        "--data",
        s(csv),
        "--out",
        s(&out),
    ];
    let cases: &[(&[&str], &str)] = &[
        (
            &["--dead-band", "0.1", "--dead-band-bps", "2"],
            "error: the argument '--dead-band <PRICE>' cannot be used with '--dead-band-bps <BPS>'",
        ),
        (
            &["--dead-band-bps", "-1"],
            "error: invalid value '-1' for '--dead-band-bps <BPS>': -1 is out of range: expected a finite number >= 0",
        ),
        (
            &["--dead-band-bps", "x"],
            "error: invalid value 'x' for '--dead-band-bps <BPS>': `x` is not a finite number >= 0",
        ),
        (
            &["--return-lags-trades", "1,0"],
            "error: invalid value '1,0' for '--return-lags-trades <TRADES,..>': entry 2: 0 is out of range: expected a whole number from 1 to 1048576",
        ),
        (
            &["--flow-windows-trades", "1,2,3,4,5,6,7,8,9"],
            "error: invalid value '1,2,3,4,5,6,7,8,9' for '--flow-windows-trades <TRADES,..>': 9 windows, at most 8 are allowed",
        ),
        (
            &["--return-lags-ms", "1000,x"],
            "error: invalid value '1000,x' for '--return-lags-ms <MS,..>': entry 2: `x` is not a whole number from 1 to 604800000",
        ),
        (
            &["--intensity-windows-ms", "-5"],
            "error: invalid value '-5' for '--intensity-windows-ms <MS,..>': entry 1: -5 is out of range: expected a whole number from 1 to 604800000",
        ),
        (
            &["--vwap-windows-ms", "604800001"],
            "error: invalid value '604800001' for '--vwap-windows-ms <MS,..>': entry 1: 604800001 is out of range: expected a whole number from 1 to 604800000",
        ),
        (
            &["--tick-size", "0"],
            "error: invalid value '0' for '--tick-size <PRICE>': 0 is out of range: expected a finite number > 0",
        ),
        (
            &["--size-unit", "-1"],
            "error: invalid value '-1' for '--size-unit <SIZE>': -1 is out of range: expected a finite number > 0",
        ),
        (
            &["--session-gap-ms", "0"],
            "error: invalid value '0' for '--session-gap-ms <MS>': 0 is out of range: expected a whole number from 1 to 4294967295",
        ),
        (
            &["--capacity", "1"],
            "error: invalid value '1' for '--capacity <TRADES>': 1 is out of range: expected a whole number from 2 to 1048576",
        ),
        (
            &["--time-steps", "0"],
            "error: invalid value '0' for '--time-steps <T>': 0 is out of range: expected a whole number from 1 to 65535",
        ),
        // In range for the flag, refused by the feature spec's own rules (a lag must fit the capacity).
        (
            &["--capacity", "64"],
            "error: invalid configuration: features: feature spec field `return_lags_trades`: window 100 is out of range: expected 1 to the capacity 64 trades",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = base.to_vec();
        args.extend(*extra);
        let err = fails(&args);
        assert!(err.contains(expected), "{extra:?}: {err}");
    }
}

/// The pipeline reads `[data.labels]` and `[data.features]` into the same settings, logs the label warnings
/// after its data line and gives the majority-class baseline in each stage's line; report.md lists the warnings.
#[test]
fn pipeline_logs_label_warnings_and_the_baseline() {
    let (csv, _) = fixtures();
    let dir = scratch("data-settings-pipeline");
    std::fs::write(dir.join("tiny.toml"), common::TINY_ARCH).unwrap();
    let path = dir.join("pipeline.toml");
    std::fs::write(
        &path,
        format!(
            "[data]\ncsv = \"{}\"\n[data.labels]\ndead_band = 100.0\n[data.features]\nsession_gap_ms = 600000\n\
             [[stages]]\nname = \"train\"\nkind = \"train\"\narch = \"tiny.toml\"\nepochs = 1\n\
             [[stages]]\nname = \"int8\"\nkind = \"quantize\"\nfrom = \"train\"\nlatency_calls = 100\n",
            csv.display()
        ),
    )
    .unwrap();
    let cfg = tickq_host::pipeline::PipelineConfig::load(&path).unwrap();
    assert_eq!(cfg.data.dataset().features.session_gap_ms, 600_000);
    let opts = tickq_host::pipeline::RunOptions {
        out: dir.join("out"),
        force: false,
        progress: false,
        device: tickq_host::device::ComputeDevice::Cpu,
    };
    let mut log = Vec::new();
    tickq_host::pipeline::run_pipeline(&cfg, &opts, &mut |l| log.push(l.to_owned())).unwrap();
    assert!(log[0].starts_with("data: "), "{log:?}");
    // The reader's note about the slice's repeated rows comes before the label warnings.
    assert!(log[1].starts_with("note: "), "{log:?}");
    assert_eq!(
        log[2],
        "warning: the train split has no `down` sample: class shares down 0.0 %, flat 100.0 %, up 0.0 %"
    );
    let train = log
        .iter()
        .find(|l| l.starts_with("train (train): "))
        .expect("train line");
    assert!(
        train.contains("; accuracy ")
            && train.contains(" % (majority-class baseline 100.00 %, always `flat`), macro-F1"),
        "{train}"
    );
    let md = std::fs::read_to_string(dir.join("out/int8/report.md")).unwrap();
    assert!(
        md.contains("## Warnings\n\n- the train split has no `down` sample"),
        "{md}"
    );
}

/// `tickq import` without `--preprocess` fits the standardization on data built with its data flags and the
/// architecture's window.
#[test]
fn import_builds_its_data_with_the_data_flags() {
    let t = trained();
    let (csv, _) = fixtures();
    let imported = t.dir.join("imported");
    let weights = t.ckpt.join("model.safetensors");
    let mut args = vec![
        "import",
        "--weights",
        s(&weights),
        "--arch",
        s(&t.arch),
        "--data",
        s(csv),
        "--out",
        s(&imported),
    ];
    // The window comes from the architecture; every other setting from the flags.
    args.extend(&SETTINGS[..2]);
    args.extend(&SETTINGS[4..]);
    ok(&args);
    let (_, original) = steps::load_checkpoint(&t.ckpt).unwrap();
    let (_, pre) = steps::load_checkpoint(&imported).unwrap();
    assert_eq!(pre.dataset, original.dataset);
    assert_eq!(pre.feature_names, original.feature_names);
    assert_eq!(pre.normalizer, original.normalizer);
}
