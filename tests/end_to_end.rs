//! Train → quantize → export → load in tickq-core → compare with f32.

use tickq_core::{Model, Session};
use tickq_host::eval::{self, Metrics};

use crate::support::fixture;

#[test]
fn int8_blob_agrees_with_f32_and_keeps_accuracy() {
    let f = fixture();
    let test = &f.data.splits.test;
    let core_model = Model::load(&f.quantized.blob).expect("exported blob loads");
    let (int8_pred, logits) = eval::int8_predict(&core_model, test.x.view());
    let float_pred = f.model.predict(f.data.normalized(test.x.view()).view());
    assert_eq!(logits.len(), test.y.len() * core_model.classes());
    let agreement = eval::agreement(&float_pred, &int8_pred);
    let float_acc = Metrics::compute(&float_pred, &test.y, &test.label_names).accuracy;
    let int8_acc = Metrics::compute(&int8_pred, &test.y, &test.label_names).accuracy;
    eprintln!(
        "slice: f32 accuracy {float_acc:.4}, int8 accuracy {int8_acc:.4}, agreement {agreement:.4}"
    );
    assert!(agreement >= 0.95, "argmax agreement {agreement} < 95 %");
    assert!(
        (float_acc - int8_acc).abs() <= 0.02,
        "int8 accuracy {int8_acc} is more than 2 points from f32 {float_acc}"
    );
}

#[test]
fn blob_runs_with_exactly_its_arena_and_is_deterministic() {
    let f = fixture();
    let model = Model::load(&f.quantized.blob).expect("loads");
    let need = model.arena_bytes();
    let mut small = vec![0u8; need - 1];
    assert!(
        Session::new(&model, &mut small).is_err(),
        "one byte less must be refused"
    );
    let mut arena_a = vec![0u8; need];
    let mut arena_b = vec![0xA5u8; need];
    let mut a = Session::new(&model, &mut arena_a).expect("exact arena accepted");
    let mut b = Session::new(&model, &mut arena_b).expect("exact arena accepted");
    for row in f.data.splits.test.x.rows().into_iter().take(500) {
        let row = row.to_vec();
        let la = a.run(&row).logits().to_vec();
        let lb = b.run(&row).logits().to_vec();
        assert_eq!(la, lb, "same blob and input must give the same bytes");
    }
}

#[test]
fn blob_metadata_records_names_and_version() {
    let f = fixture();
    let model = Model::load(&f.quantized.blob).expect("loads");
    let meta = model.metadata();
    let features: Vec<&str> = meta.feature_names().collect();
    assert_eq!(features.len(), f.data.features());
    assert_eq!(features[0], f.data.splits.train.feature_names[0]);
    let labels: Vec<&str> = meta.label_names().collect();
    assert_eq!(labels, ["down", "flat", "up"]);
    assert_eq!(meta.tickq_version(), env!("CARGO_PKG_VERSION"));
}
