//! The conv-window model (`host/models/conv-window.toml`, 32 ticks of 29 features) trained briefly on the
//! bundled ticks, quantized and exported, then streamed column by column through `WindowSession` over the test
//! split: every prediction must equal `Session::run` on the sample's window, bit for bit; then the slice's raw
//! trades go through `StreamSession` and must give the host pipeline's prediction at every trade.

use tickq_core::{Model, Session, WindowSession};
use tickq_host::data::{self, DatasetConfig};
use tickq_host::model::Architecture;
use tickq_host::quant::QuantConfig;
use tickq_host::steps;
use tickq_host::train::TrainConfig;

/// Trades of the bundled file (a slice from the start, so the test stays fast on two cores).
const TRADES: usize = 12_000;

#[test]
fn conv_window_streams_the_test_split_exactly() {
    let arch =
        Architecture::from_toml_str(tickq_host::shapes::CONV_WINDOW).expect("conv-window parses");
    let time_steps = arch.input.time_steps;
    let trades = data::load_trades(&data::default_data_path().expect("bundled data"))
        .expect("bundled data loads");
    let dataset = DatasetConfig {
        time_steps,
        ..DatasetConfig::default()
    };
    let prepared = steps::prepare_from_trades(
        &trades[..TRADES.min(trades.len())],
        "bundled slice".into(),
        [0; 32],
        &dataset,
        None,
    )
    .expect("the slice prepares");
    let cfg = TrainConfig {
        epochs: 1,
        ..steps::demo_train_config()
    };
    let (model, _) = steps::train_model(arch, &prepared, &cfg, &mut |_| {}).expect("trains");
    let quantized =
        steps::quantize_model(&model, &prepared, &QuantConfig::default()).expect("quantizes");

    let core_model = Model::load(&quantized.blob).expect("the exported blob loads");
    let (t, f) = core_model.input_shape();
    assert_eq!(t, time_steps);
    let mut arena = vec![0u8; core_model.arena_bytes()];
    let mut session = Session::new(&core_model, &mut arena).expect("exact arena");
    let mut stream_arena =
        vec![0u8; WindowSession::arena_bytes(&core_model).expect("conv-window streams")];
    let mut stream =
        WindowSession::new(&core_model, &mut stream_arena).expect("conv-window streams");

    let test = &prepared.splits.test;
    assert_eq!(test.x.ncols(), t * f);
    let (mut incremental, mut refills) = (0usize, 0usize);
    let mut previous: Option<(usize, Vec<f32>)> = None;
    for (row, &tick) in test.x.rows().into_iter().zip(&test.tick_index) {
        let row = row.to_vec();
        // A sample ends at trade `tick` and holds the feature rows `tick - T + 1..=tick`: the sample of the next
        // trade shares `T - 1` columns with it. After a gap (an invalid row, a session break, a trade without a
        // label) the window is filled again from the sample's own columns.
        let next = previous
            .as_ref()
            .is_some_and(|(p, prev)| *p + 1 == tick && prev[f..] == row[..(t - 1) * f]);
        let streamed = if next {
            incremental += 1;
            stream
                .push(&row[(t - 1) * f..])
                .map(|p| p.logits().to_vec())
        } else {
            refills += 1;
            stream.reset();
            let mut last = None;
            for column in row.chunks_exact(f) {
                last = stream.push(column).map(|p| p.logits().to_vec());
            }
            last
        };
        let expected = session.run(&row).logits().to_vec();
        assert_eq!(
            streamed.as_deref(),
            Some(&expected[..]),
            "test sample ending at trade {tick}: streamed logits differ from Session::run"
        );
        previous = Some((tick, row));
    }
    eprintln!(
        "conv-window: {incremental} samples streamed one column on, {refills} windows refilled"
    );
    assert!(
        incremental > 10 * refills.max(1),
        "the test split should be mostly consecutive trades"
    );

    // Raw trades in: `StreamSession` (the blob's feature spec, then the window) against the host pipeline at
    // every trade of the slice, as `tickq replay` does.
    assert!(
        core_model.feature_spec().is_some(),
        "the blob carries its feature spec"
    );
    let report = tickq_host::replay::replay(&core_model, &trades[..TRADES.min(trades.len())])
        .expect("the conv window replays");
    assert_eq!(report.mismatches, 0, "{:?}", report.first_mismatches);
    assert!(
        report.compared > TRADES / 2,
        "{} predictions compared",
        report.compared
    );
}
