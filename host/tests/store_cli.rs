//! `tickq train --store DIR` end to end: the store is built, reused, rebuilt for other settings, and a damaged
//! store is an error naming the file and the offset.

mod common;

use common::{fails, fixtures, ok_stderr, s, scratch};

#[test]
fn train_from_a_store_builds_reuses_rebuilds_and_refuses_a_damaged_one() {
    let (csv, arch) = fixtures();
    let dir = scratch("store-cli");
    let store = dir.join("store");
    let out = dir.join("ckpt");
    let args = |horizon: &'static str| {
        vec![
            "train".to_owned(),
            "--arch".into(),
            s(arch).into(),
            "--data".into(),
            s(csv).into(),
            "--store".into(),
            s(&store).into(),
            "--out".into(),
            s(&out).into(),
            "--epochs".into(),
            "1".into(),
            "--horizon".into(),
            horizon.into(),
        ]
    };
    let run = |a: Vec<String>| ok_stderr(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let first = run(args("100"));
    assert!(!first.contains("reusing"), "{first}");
    assert!(out.join("model.safetensors").exists());
    assert!(store.join("header.bin").exists());
    let again = run(args("100"));
    assert!(
        again.contains(&format!("reusing the sample store {}", store.display())),
        "{again}"
    );
    let other = run(args("50"));
    assert!(
        other.contains(&format!(
            "note: {} was built with other data settings; rebuilding it",
            store.display()
        )),
        "{other}"
    );
    // A truncated sample index.
    let samples = store.join("samples.u64");
    let len = std::fs::metadata(&samples).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&samples)
        .unwrap();
    file.set_len(len - 16).unwrap();
    let a = args("50");
    let err = fails(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains(&format!(
            "error: {}: truncated at byte {}: the header needs {len} bytes; remove the store to rebuild it",
            samples.display(),
            len - 16
        )),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
