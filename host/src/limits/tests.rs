//! Tests of `limits`.

use super::*;

#[test]
fn counts_parse_signs_and_scientific_notation_into_range_errors() {
    assert_eq!(EPOCHS.parse("20"), Ok(20));
    assert_eq!(EPOCHS.parse("2e1"), Ok(20));
    assert_eq!(
        EPOCHS.parse("-5").unwrap_err().to_string(),
        "-5 is out of range: expected a whole number from 1 to 1000000"
    );
    assert_eq!(
        EPOCHS.parse("0").unwrap_err().to_string(),
        "0 is out of range: expected a whole number from 1 to 1000000"
    );
    assert_eq!(
        LATENCY_CALLS.parse("1e12").unwrap_err().to_string(),
        "1000000000000 is out of range: expected a whole number from 1 to 10000000"
    );
    assert_eq!(
        EPOCHS.parse("2.5").unwrap_err().to_string(),
        "`2.5` is not a whole number from 1 to 1000000"
    );
    assert!(matches!(
        EPOCHS.parse("99999999999999999999999999999999999999999"),
        Err(RangeError::OutOfRange { .. })
    ));
    assert_eq!(SEED.parse("18446744073709551615"), Ok(u64::MAX));
    assert_eq!(
        CALIBRATION_SAMPLES.to_string(),
        "a whole number from 1 to 4294967295"
    );
    assert_eq!(
        Count::new(1, u64::MAX).to_string(),
        "a whole number of at least 1"
    );
    assert_eq!(PATIENCE.check_usize(0), Ok(0));
    assert!(EPOCHS.check_usize(usize::MAX).is_err());
}

#[test]
fn reals_name_their_interval() {
    assert_eq!(MOMENTUM.to_string(), "a number in [0, 1)");
    assert_eq!(LR.to_string(), "a finite number > 0");
    assert_eq!(DEAD_BAND.to_string(), "a finite number >= 0");
    assert_eq!(
        MOMENTUM.check_f32(2.0).unwrap_err().to_string(),
        "2 is out of range: expected a number in [0, 1)"
    );
    assert!(MOMENTUM.check_f32(0.0).is_ok());
    assert!(MOMENTUM.check_f32(1.0).is_err());
    assert!(AVERAGING_CONSTANT.check(1.0).is_ok());
    assert!(AVERAGING_CONSTANT.check(0.0).is_err());
    assert!(LR.parse("nan").is_err() && LR.parse("inf").is_err());
    assert_eq!(
        LR.parse("-0.5").unwrap_err().to_string(),
        "-0.5 is out of range: expected a finite number > 0"
    );
    assert_eq!(
        LR.parse("fast").unwrap_err().to_string(),
        "`fast` is not a finite number > 0"
    );
    assert!(PERCENTILE.contains(50.0) && PERCENTILE.contains(100.0));
    assert!(!PERCENTILE.contains(49.9));
}

#[test]
fn toml_errors_give_the_reason_on_the_first_line() {
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        n: usize,
    }
    let e = toml::from_str::<T>("n = 1\ncolour = 2\n").unwrap_err();
    let m = toml_message(&e);
    let lines: Vec<&str> = m.lines().collect();
    assert_eq!(
        lines[0],
        "TOML parse error at line 2, column 1: unknown field `colour`, expected `n`"
    );
    assert!(lines[1..].iter().any(|l| l.contains("colour = 2")), "{m}");
    assert!(
        !lines[1..].iter().any(|l| l.contains("unknown field")),
        "{m}"
    );
    let e = toml::from_str::<T>("n = -3\n").unwrap_err();
    assert_eq!(
        toml_message(&e).lines().next().unwrap(),
        "TOML parse error at line 1, column 5: invalid value: integer `-3`, expected usize"
    );
    // A 10 MB key is cut in the reason as well as in the quote.
    let key = "k".repeat(10_000_000);
    let e = toml::from_str::<T>(&format!("{key} = 1\n")).unwrap_err();
    let m = toml_message(&e);
    assert!(m.len() < 2_000, "{} bytes", m.len());
    assert!(
        m.lines().next().unwrap().contains("… (10000"),
        "{}",
        &m[..300]
    );
}

#[test]
fn binary_files_are_read_up_to_their_limit() {
    let dir = std::env::temp_dir().join(format!("tickq-limits-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.safetensors");
    std::fs::write(&path, vec![1u8; 100]).unwrap();
    assert_eq!(read_file_limited(&path, 100, "x").unwrap().len(), 100);
    assert_eq!(
        read_file_limited(&path, 99, "a safetensors file")
            .unwrap_err()
            .to_string(),
        "100 bytes, larger than 99 bytes, the most tickq reads from a safetensors file"
    );
    #[cfg(target_os = "linux")]
    assert_eq!(
        read_file_limited(Path::new("/dev/zero"), 1000, "a safetensors file")
            .unwrap_err()
            .to_string(),
        "larger than 1000 bytes, the most tickq reads from a safetensors file"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn blob_files_are_read_only_as_far_as_their_header_says() {
    let dir = std::env::temp_dir().join(format!("tickq-limits-blob-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.blob");
    // Not a blob: only the header's worth is read.
    std::fs::write(&path, vec![7u8; 10_000]).unwrap();
    assert_eq!(read_blob_file(&path).unwrap(), vec![7u8; 64]);
    // A header declaring 100 bytes, with 200 in the file: 101 are read, so the loader sees the mismatch.
    let mut blob = vec![0u8; 200];
    blob[..8].copy_from_slice(&tickq_core::format::MAGIC);
    blob[16..20].copy_from_slice(&100u32.to_le_bytes());
    std::fs::write(&path, &blob).unwrap();
    assert_eq!(read_blob_file(&path).unwrap(), blob[..101].to_vec());
    // A header declaring more than the limit is refused before anything past it is read.
    blob[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&path, &blob).unwrap();
    let e = read_blob_file(&path).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge);
    assert_eq!(
        e.to_string(),
        "the blob header declares 4294967295 bytes, above 268435456, the most tickq reads from a blob"
    );
    #[cfg(target_os = "linux")]
    assert_eq!(
        read_blob_file(Path::new("/dev/zero")).unwrap(),
        vec![0u8; 64]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn excerpts_escape_control_characters_and_cut_long_text() {
    assert_eq!(excerpt("a\0b\n\u{1b}"), "a\\0b\\n\\u{1b}");
    assert_eq!(excerpt("plain ünïcode"), "plain ünïcode");
    let long = "x".repeat(10_000_000);
    let shown = excerpt(&long);
    assert_eq!(
        shown,
        format!("{}… (10000000 bytes)", "x".repeat(EXCERPT_CHARS))
    );
    assert_eq!(
        excerpt(&"y".repeat(EXCERPT_CHARS)),
        "y".repeat(EXCERPT_CHARS)
    );
    let message = format!(
        "TOML parse error at line 1\n1 | {}\n  | ^",
        "z".repeat(1_000_000)
    );
    let lines: Vec<String> = excerpt_lines(&message)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], "TOML parse error at line 1");
    assert!(
        lines[1].ends_with("… (1000004 bytes)") && lines[1].len() < 200,
        "{}",
        lines[1]
    );
}

#[test]
fn memory_checks_name_both_numbers() {
    assert!(check_memory_within(10, None, || unreachable!()).is_ok());
    assert!(check_memory_within(10, Some((10, false)), || unreachable!()).is_ok());
    let e = check_memory_within(3 << 30, Some((1 << 30, true)), || {
        "the sample matrix".into()
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the sample matrix needs about 3221225472 bytes (3.0 GiB) of memory, more than the 1073741824 bytes (1.0 GiB) that TICKQ_MEMORY_LIMIT allows"
    );
}

#[test]
fn limited_reads_stop_after_the_limit() {
    let dir = std::env::temp_dir().join(format!("tickq-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.toml");
    std::fs::write(&path, vec![b'a'; 101]).unwrap();
    assert_eq!(
        read_text_limited(&path, 101, "a config file")
            .unwrap()
            .len(),
        101
    );
    let e = read_text_limited(&path, 100, "a config file").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge);
    assert!(e.to_string().contains("larger than 100 bytes"), "{e}");
    std::fs::write(&path, [b'a', 0xff]).unwrap();
    let e = read_text_limited(&path, 100, "a config file").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    #[cfg(target_os = "linux")]
    {
        let e = read_text_limited(Path::new("/dev/zero"), MAX_CONFIG_BYTES, "a config file")
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
