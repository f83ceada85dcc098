//! `tickq demo` pinned: the test accuracy of every stage and the length and CRC-32 of every blob it writes, as
//! they were when this test was written, so a refactor that changes what the demo produces is seen at once.
//!
//! The demo runs on the CPU (`--device cpu`), which repeats itself exactly on one machine: one seeded
//! generator, single-threaded arithmetic. The values were taken on an x86-64 with AVX2 and FMA; ndarray's
//! matrix products pick their kernels by CPU feature at run time, so a CPU without FMA may round differently.
//! It takes about 6 s in release on 2 cores.
//! When a change is meant to alter the demo's output, rerun the demo, update [`EXPECTED`] and say so in the
//! commit; otherwise demo output must stay byte-identical.

use std::path::Path;

mod common;

use common::{ok, s, scratch};

/// The test split's size, which every accuracy below divides.
const TEST_SAMPLES: usize = 17_691;

/// One stage of the demo as pinned: its name, its correct test predictions (accuracy times [`TEST_SAMPLES`])
/// and, for the stages that write one, its blob's length and CRC-32.
struct Pin {
    stage: &'static str,
    correct: usize,
    blob: Option<(usize, u32)>,
}

/// The demo's stages, in the order of `host/pipelines/demo.toml`.
const EXPECTED: [Pin; 5] = [
    Pin {
        stage: "train",
        correct: 6273,
        blob: None,
    },
    Pin {
        stage: "int8",
        correct: 6326,
        blob: Some((25_517, 0x0836_4c1f)),
    },
    Pin {
        stage: "int8-dynamic",
        correct: 6278,
        blob: Some((24_221, 0x5a29_ab67)),
    },
    Pin {
        stage: "pruned",
        correct: 6250,
        blob: None,
    },
    Pin {
        stage: "pruned-int8",
        correct: 6136,
        blob: Some((25_517, 0xb557_2867)),
    },
];

/// The stage whose blob the demo copies to `OUT/model.blob`.
const DEMO_BLOB_STAGE: &str = "int8";

/// What a mismatch says besides the values.
const HINT: &str = "tickq demo's output must stay byte-identical unless a change is meant to alter it \
                    (then update EXPECTED in host/tests/demo_pin.rs and say so in the commit)";

/// A blob's length and CRC-32, checking that the CRC its header stores is the one of its bytes.
fn blob_pin(path: &Path) -> (usize, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let crc = tickq_core::format::compute_crc(&bytes);
    let stored = bytes
        .get(tickq_core::format::header::CRC)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    assert_eq!(stored, Some(crc), "{}: stored CRC", path.display());
    (bytes.len(), crc)
}

/// A blob pin as a mismatch message shows it.
fn show(blob: Option<(usize, u32)>) -> String {
    blob.map_or("no blob".into(), |(len, crc)| {
        format!("{len} bytes, CRC-32 0x{crc:08x}")
    })
}

#[test]
fn demo_output_is_pinned() {
    let out = scratch("demo-pin");
    ok(&["demo", "--out", s(&out), "--device", "cpu"]);
    let text = std::fs::read_to_string(out.join("comparison.json")).unwrap();
    let comparison: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        comparison["test_samples"].as_u64(),
        Some(TEST_SAMPLES as u64),
        "the demo's test split changed size; {HINT}"
    );
    let rows = comparison["stages"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["stage"].as_str().unwrap()).collect();
    let expected_names: Vec<&str> = EXPECTED.iter().map(|p| p.stage).collect();
    assert_eq!(names, expected_names, "the demo's stages changed; {HINT}");
    let mut changed = Vec::new();
    for (row, pin) in rows.iter().zip(&EXPECTED) {
        let accuracy = row["accuracy"].as_f64().unwrap();
        let correct = (accuracy * TEST_SAMPLES as f64).round() as usize;
        if correct != pin.correct || accuracy != correct as f64 / TEST_SAMPLES as f64 {
            changed.push(format!(
                "stage {}: test accuracy {accuracy} ({correct} of {TEST_SAMPLES} correct), pinned {} of \
                 {TEST_SAMPLES}",
                pin.stage, pin.correct
            ));
        }
        let blob = pin
            .blob
            .map(|_| blob_pin(&out.join(pin.stage).join("model.blob")));
        if blob != pin.blob {
            changed.push(format!(
                "stage {}: blob of {}, pinned {}",
                pin.stage,
                show(blob),
                show(pin.blob)
            ));
        }
    }
    let demo_blob = blob_pin(&out.join("model.blob"));
    let expected_blob = EXPECTED
        .iter()
        .find(|p| p.stage == DEMO_BLOB_STAGE)
        .and_then(|p| p.blob);
    if Some(demo_blob) != expected_blob {
        changed.push(format!(
            "OUT/model.blob: {}, pinned {} (stage {DEMO_BLOB_STAGE}'s)",
            show(Some(demo_blob)),
            show(expected_blob)
        ));
    }
    assert!(
        changed.is_empty(),
        "tickq demo --device cpu changed:\n  {}\n{HINT}",
        changed.join("\n  ")
    );
    let _ = std::fs::remove_dir_all(&out);
}
