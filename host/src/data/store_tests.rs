use std::path::PathBuf;

use super::*;
use crate::data::{
    DatasetConfig, SplitConfig, build_dataset, bundled_data, chronological_split, load_trades,
};
use crate::test_support as ts;
use crate::train::{self, TrainConfig};

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tickq-store-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The bundled file's first `n` trades, as a file of their own.
fn head_file(dir: &Path, n: usize) -> PathBuf {
    let text = String::from_utf8(bundled_data().expect("bundled data")).expect("UTF-8");
    let head: Vec<&str> = text.lines().take(n + 1).collect();
    let path = dir.join("head.csv");
    std::fs::write(&path, head.join("\n") + "\n").expect("write head");
    path
}

fn config() -> DatasetConfig {
    DatasetConfig {
        time_steps: 3,
        ..DatasetConfig::default()
    }
}

fn bits(x: &Array2<f32>) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

fn quiet() -> (impl FnMut(&str), impl FnMut(u64)) {
    (|_: &str| {}, |_: u64| {})
}

#[test]
fn round_trip_equals_build_dataset_and_split_bit_for_bit() {
    let dir = temp_dir("round-trip");
    let data = head_file(&dir, 20_000);
    let cfg = config();
    let trades = load_trades(&data).expect("trades");
    assert_eq!(trades.len(), 20_000);
    let ds = build_dataset(&trades, &cfg).expect("dataset");
    let split = SplitConfig::for_dataset(&ds);
    let splits = chronological_split(&ds, &split).expect("split");

    let (mut note, mut progress) = quiet();
    let store_dir = dir.join("store");
    let mut store =
        open_or_build(&data, &cfg, &store_dir, &mut note, &mut progress).expect("store");
    store.set_feature_names(cfg.features.feature_names());
    assert_eq!(store.len(), ds.len());
    assert_eq!(store.header.trades, 20_000);
    assert_eq!(store.header.features as usize, ds.features);
    assert_eq!(store.default_split(), split);
    let all = store.dataset(0..store.len()).expect("read");
    assert_eq!(bits(&all.x), bits(&ds.x));
    assert_eq!(all.y, ds.y);
    assert_eq!(all.tick_index, ds.tick_index);
    assert_eq!(all.feature_names, ds.feature_names);
    let ranges = store.split(&split).expect("split ranges");
    for (range, part) in ranges
        .iter()
        .zip([&splits.train, &splits.validation, &splits.test])
    {
        let got = store.dataset(range.clone()).expect("part");
        assert_eq!(bits(&got.x), bits(&part.x));
        assert_eq!(got.y, part.y);
        assert_eq!(got.tick_index, part.tick_index);
    }
    // The streaming fit sums in the same order as `Normalizer::fit`: equal bit for bit, whatever the chunk.
    let fitted = Normalizer::fit(&splits.train);
    for chunk in [1000, 1 << 20] {
        assert_eq!(
            store.fit_normalizer(ranges[0].clone(), chunk).expect("fit"),
            fitted
        );
    }
    // Reused on the next call, with a note.
    let mut notes = Vec::new();
    let again = open_or_build(
        &data,
        &cfg,
        &store_dir,
        &mut |n| notes.push(n.to_owned()),
        &mut progress,
    )
    .expect("reuse");
    assert_eq!(again.header, store.header);
    assert_eq!(
        notes,
        [format!(
            "reusing the sample store {} ({} samples)",
            store_dir.display(),
            ds.len()
        )]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn other_settings_rebuild_and_an_interrupted_build_restarts() {
    let dir = temp_dir("rebuild");
    let data = head_file(&dir, 6_000);
    let store_dir = dir.join("store");
    let (_, mut progress) = quiet();
    let mut notes = Vec::new();
    open_or_build(
        &data,
        &config(),
        &store_dir,
        &mut |n| notes.push(n.to_owned()),
        &mut progress,
    )
    .expect("build");
    assert!(notes.is_empty(), "{notes:?}");
    let other = DatasetConfig {
        time_steps: 1,
        ..config()
    };
    let store = open_or_build(
        &data,
        &other,
        &store_dir,
        &mut |n| notes.push(n.to_owned()),
        &mut progress,
    )
    .expect("rebuild");
    assert_eq!(store.header.time_steps, 1);
    assert_eq!(
        notes,
        [format!(
            "note: {} was built with other data settings; rebuilding it",
            store_dir.display()
        )]
    );
    let expected = build_dataset(&load_trades(&data).expect("trades"), &config()).expect("dataset");

    // An interrupted build: data files half written, no header. The next call restarts it cleanly.
    notes.clear();
    std::fs::remove_file(store_dir.join(HEADER_FILE)).expect("remove header");
    let rows = store_dir.join(ROWS_FILE);
    let len = std::fs::metadata(&rows).expect("rows").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&rows)
        .expect("open rows");
    file.set_len(len / 3).expect("truncate");
    let store = open_or_build(
        &data,
        &config(),
        &store_dir,
        &mut |n| notes.push(n.to_owned()),
        &mut progress,
    )
    .expect("restart");
    assert_eq!(
        notes,
        [format!(
            "note: {} has no header.bin (an interrupted build); building it again",
            store_dir.display()
        )]
    );
    let got = store.dataset(0..store.len()).expect("read");
    assert_eq!(bits(&got.x), bits(&expected.x));
    assert_eq!(got.y, expected.y);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn damaged_stores_are_errors_naming_the_file_and_offset() {
    let dir = temp_dir("damaged");
    let data = head_file(&dir, 6_000);
    let store_dir = dir.join("store");
    let (mut note, mut progress) = quiet();
    let header = open_or_build(&data, &config(), &store_dir, &mut note, &mut progress)
        .expect("build")
        .header;
    let err = |dir: &Path| SampleStore::open(dir).expect_err("damaged").to_string();

    // A truncated rows file.
    let rows = store_dir.join(ROWS_FILE);
    let full = header.rows * u64::from(header.features) * 4;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&rows)
        .expect("open rows");
    file.set_len(full - 10).expect("truncate");
    assert_eq!(
        err(&store_dir),
        format!(
            "{}: truncated at byte {}: the header needs {full} bytes; remove the store to rebuild it",
            rows.display(),
            full - 10
        )
    );
    file.set_len(full).expect("restore length");

    // A label out of range.
    let labels = store_dir.join(LABELS_FILE);
    let mut bytes = std::fs::read(&labels).expect("labels");
    let good = bytes[7];
    bytes[7] = 9;
    std::fs::write(&labels, &bytes).expect("write labels");
    assert_eq!(
        err(&store_dir),
        format!(
            "{}, byte 7: label 9 (labels are 0, 1, 2); remove the store to rebuild it",
            labels.display()
        )
    );
    bytes[7] = good;
    std::fs::write(&labels, &bytes).expect("restore labels");

    // A window that points past the rows, found when the chunk is read.
    let samples = store_dir.join(SAMPLES_FILE);
    let mut bytes = std::fs::read(&samples).expect("samples");
    bytes[16 * 5 + 8..16 * 6].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&samples, &bytes).expect("write samples");
    let store = SampleStore::open(&store_dir).expect("opens: the index is checked when read");
    assert_eq!(
        store.read(0..10).expect_err("bad window").to_string(),
        format!(
            "{}, byte {}: window ending at row {} is outside the {} rows of 3 time steps; remove the store to rebuild it",
            samples.display(),
            16 * 5 + 8,
            u64::MAX,
            header.rows
        )
    );

    // A header that is not one, and a short one.
    let head = store_dir.join(HEADER_FILE);
    let mut bytes = std::fs::read(&head).expect("header");
    bytes[0] = b'X';
    std::fs::write(&head, &bytes).expect("write header");
    assert_eq!(
        err(&store_dir),
        format!(
            "{}, byte 0: not a tickq sample store header; remove the store to rebuild it",
            head.display()
        )
    );
    std::fs::write(&head, &bytes[..50]).expect("short header");
    assert_eq!(
        err(&store_dir),
        format!(
            "{}: truncated at byte 50: the header needs 112 bytes; remove the store to rebuild it",
            head.display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn training_from_the_store_matches_training_in_memory() {
    let dir = temp_dir("train");
    let data = head_file(&dir, 20_000);
    let cfg = config();
    let trades = load_trades(&data).expect("trades");
    let ds = build_dataset(&trades, &cfg).expect("dataset");
    let split = SplitConfig::for_dataset(&ds);
    let splits = chronological_split(&ds, &split).expect("split");
    let normalizer = Normalizer::fit(&splits.train);
    let train_x = normalizer.transform(splits.train.x.view());
    let val_x = normalizer.transform(splits.validation.x.view());
    let test_x = normalizer.transform(splits.test.x.view());

    let (mut note, mut progress) = quiet();
    let store =
        open_or_build(&data, &cfg, &dir.join("store"), &mut note, &mut progress).expect("store");
    let ranges = store.split(&split).expect("ranges");
    let tcfg = TrainConfig {
        epochs: 2,
        batch_size: 64,
        ..TrainConfig::default()
    };
    let layers = [ts::Flatten, ts::dense(16), ts::ReLU, ts::dense(3)];
    let arch = ts::arch("s", 3, [cfg.time_steps, ds.features], &layers);
    let mut memory = ts::seeded_model(arch.clone(), 3);
    train::train(
        &mut memory,
        train_x.view(),
        &splits.train.y,
        val_x.view(),
        &splits.validation.y,
        &tcfg,
        &mut |_| {},
    )
    .expect("train in memory");
    let accuracy = |m: &crate::model::Sequential, x: &Array2<f32>, y: &[u8]| {
        let p = m.predict(x.view());
        p.iter()
            .zip(y)
            .filter(|(a, b)| **a == usize::from(**b))
            .count() as f32
            / y.len() as f32
    };
    let memory_acc = accuracy(&memory, &test_x, &splits.test.y);

    // One chunk holding the whole training part: the same order, so the same weights bit for bit.
    let whole =
        |range: &Range<usize>, chunk| StoreSamples::new(&store, range.clone(), &normalizer, chunk);
    let mut one = ts::seeded_model(arch.clone(), 3);
    train::train_from_store(
        &mut one,
        &whole(&ranges[0], 1 << 20),
        &whole(&ranges[1], 1 << 20),
        &tcfg,
        &mut |_| {},
    )
    .expect("train from one chunk");
    let weights = |m: &crate::model::Sequential| -> Vec<Vec<u32>> {
        m.state_dict()
            .into_iter()
            .map(|(_, _, d)| d.iter().map(|v| v.to_bits()).collect())
            .collect()
    };
    assert_eq!(weights(&one), weights(&memory));
    let test = whole(&ranges[2], 1000);
    let (_, store_acc) =
        train::evaluate_source(&one, train::SampleSource::Store(&test), None).expect("evaluate");
    assert_eq!(store_acc, memory_acc);

    // Small chunks: another (chunk-wise) order, so other weights, all finite, and an accuracy that differs from
    // the in-memory one only as much as another shuffle does: the tolerance is the spread of the in-memory
    // accuracy over four shuffling seeds (same weights at the start, same samples, same steps), plus one point.
    let mut chunked = ts::seeded_model(arch.clone(), 3);
    train::train_from_store(
        &mut chunked,
        &whole(&ranges[0], 500),
        &whole(&ranges[1], 500),
        &tcfg,
        &mut |_| {},
    )
    .expect("train from chunks");
    assert_ne!(weights(&chunked), weights(&memory));
    assert!(
        chunked
            .state_dict()
            .iter()
            .all(|(_, _, d)| d.iter().all(|v| v.is_finite()))
    );
    let chunked_acc = accuracy(&chunked, &test_x, &splits.test.y);
    let mut seeds = vec![memory_acc];
    for seed in 1..4 {
        let mut m = ts::seeded_model(arch.clone(), 3);
        let c = TrainConfig {
            seed: tcfg.seed + seed,
            ..tcfg.clone()
        };
        train::train(
            &mut m,
            train_x.view(),
            &splits.train.y,
            val_x.view(),
            &splits.validation.y,
            &c,
            &mut |_| {},
        )
        .expect("train in memory");
        seeds.push(accuracy(&m, &test_x, &splits.test.y));
    }
    let lo = seeds.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = seeds.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let tolerance = (hi - lo) + 0.01;
    assert!(
        chunked_acc >= lo - tolerance && chunked_acc <= hi + tolerance,
        "chunked {chunked_acc} vs in memory {seeds:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn chunk_order_keeps_groups_of_chunks_together_and_covers_every_sample() {
    let dir = temp_dir("order");
    let data = head_file(&dir, 6_000);
    let (mut note, mut progress) = quiet();
    let store = open_or_build(
        &data,
        &config(),
        &dir.join("store"),
        &mut note,
        &mut progress,
    )
    .expect("store");
    let normalizer = Normalizer {
        mean: vec![0.0; store.header.features as usize],
        std: vec![1.0; store.header.features as usize],
    };
    let part = StoreSamples::new(&store, 0..store.len(), &normalizer, 700);
    let mut order = vec![0; part.len()];
    let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
    part.epoch_order(&mut order, &mut rng);
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..part.len()).collect::<Vec<_>>());
    // Each group of MIX_CHUNKS chunks is one stretch of the order: its samples are from those chunks only.
    let chunks = part.len().div_ceil(700);
    let mut groups = std::collections::HashSet::new();
    let mut at = 0;
    while at < order.len() {
        let in_group: std::collections::BTreeSet<usize> = order[at..]
            .iter()
            .take(700 * MIX_CHUNKS)
            .map(|i| i / 700)
            .collect();
        assert!(in_group.len() <= MIX_CHUNKS, "{in_group:?}");
        let size: usize = in_group
            .iter()
            .map(|&c| (part.len() - c * 700).min(700))
            .sum();
        assert!(
            order[at..at + size]
                .iter()
                .all(|i| in_group.contains(&(i / 700)))
        );
        groups.extend(in_group);
        at += size;
    }
    assert_eq!(groups.len(), chunks);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn chunked_reading_equals_the_whole_read_and_refuses_a_step_back_across_chunks() {
    let dir = temp_dir("chunks");
    let data = head_file(&dir, 5_000);
    let whole = load_trades(&data).expect("trades");
    let options = crate::options::ReadOptions::default();
    let mut chunked = Vec::new();
    let mut sizes = Vec::new();
    for chunk in crate::data::trade_chunks(&data, &options, 1_000).expect("open") {
        let chunk = chunk.expect("chunk");
        sizes.push(chunk.trades.len());
        chunked.extend(chunk.trades);
    }
    assert_eq!(sizes, [1_000; 5]);
    assert_eq!(chunked, whole);

    // A step back at the first row of the second chunk (line 4 follows line 3, a chunk of 2 rows).
    let back = dir.join("back.csv");
    std::fs::write(
        &back,
        "DateTime,Price,Volume\n2013-09-01 17:00:00.100,1640.25,1\n2013-09-01 17:00:00.200,1640.25,1\n\
         2013-09-01 17:00:00.150,1640.25,1\n",
    )
    .expect("write");
    let err = crate::data::trade_chunks(&back, &options, 2)
        .expect("open")
        .find_map(Result::err)
        .expect("a step back");
    let in_memory = load_trades(&back).expect_err("a step back in memory too");
    assert_eq!(err.to_string(), in_memory.to_string());
    let _ = std::fs::remove_dir_all(&dir);
}
