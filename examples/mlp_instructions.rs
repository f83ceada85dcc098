//! Runs the mlp reference shape (32 → 64 → 32 → 3, seeded random weights, encoded for this machine) `N` times on
//! one backend, inside `run_inferences`, so that callgrind can count the instructions of exactly those calls:
//!
//! ```sh
//! valgrind --tool=callgrind --toggle-collect='*run_inferences*' target/release/examples/mlp_instructions avx2 1000
//! ```
//!
//! Instruction counts do not depend on the machine's load, so `tests/callgrind.rs` uses this to guard the hot
//! path against regressions. Valgrind's CPU has no AVX-512, so `avx512-vnni` cannot be counted this way.

use std::hint::black_box;

use tickq_core::{Backend, Model, Session};
use tickq_host::model::{Architecture, Sequential};
use tickq_host::quant::{ExportInfo, QuantConfig, static_quantize};

/// The counted region: `n` inferences on the rows of `inputs`, in turn.
#[inline(never)]
fn run_inferences(session: &mut Session<'_, '_, '_>, inputs: &[Vec<f32>], n: usize) -> usize {
    let mut sink = 0usize;
    for i in 0..n {
        sink = sink.wrapping_add(session.run(black_box(&inputs[i % inputs.len()])).signal());
    }
    sink
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let backend: Backend = args.next().as_deref().unwrap_or("generic").parse()?;
    let n: usize = args.next().as_deref().unwrap_or("1000").parse()?;
    let arch = Architecture::from_toml_str(tickq_host::shapes::REF_MLP)?;
    let model = Sequential::new(arch, 11)?;
    let width = 32;
    let mut seed = 9u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
    };
    let calibration = ndarray::Array2::from_shape_fn((512, width), |_| next());
    let info = ExportInfo {
        name: "mlp".into(),
        feature_names: (0..width).map(|i| format!("f{i}")).collect(),
        label_names: vec!["down".into(), "flat".into(), "up".into()],
        mean: vec![0.0; width],
        std: vec![1.0; width],
        data_hash: [0; 32],
        feature_spec: None,
    };
    let q = static_quantize(&model, calibration.view(), &info, &QuantConfig::default())?;
    let mut model = Model::load(&q.blob)?;
    model.set_backend(backend)?;
    let inputs: Vec<Vec<f32>> = (0..64)
        .map(|_| (0..width).map(|_| next()).collect())
        .collect();
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut session = Session::new(&model, &mut arena)?;
    let sink = run_inferences(&mut session, &inputs, n);
    println!("{} inferences on {}, signal sum {sink}", n, model.backend());
    Ok(())
}
