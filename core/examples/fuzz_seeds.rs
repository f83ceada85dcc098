//! Writes the seed corpus of the blob fuzz targets (`fuzz/README.md`): small valid blobs in every weight format
//! the encoder accepts for them, for every target, plus a dynamically quantized one and one carrying a feature
//! spec (format version 5, so every byte of that section is there to mutate).
//!
//! `cargo run -p tickq-core --release --features std,alloc --example fuzz_seeds -- DIR` writes
//! `DIR/<model>-<format>-<target>.blob` and prints how many it wrote. A (model, format) pair the encoder refuses
//! (for example N:M on a row length that is not a multiple of 4) is skipped: the other model covers that format.
//! It exits non-zero if a weight format got no seed at all, so the corpus never silently loses one.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use tickq_core::encode::{
    EncodeOptions, LayerSpec, ModelSpec, OpSpec, Target, WeightFormat, encode_with,
};
use tickq_core::requant::QuantMultiplier;

#[path = "../tests/support.rs"]
mod support;

use support::{Qp, Rng, dense_layer, identity_input, spec, with_clamp};

/// A Quantize -> Dense(16 -> 12, ReLU) -> Dense(12 -> 3) model whose weights keep two of every four (the largest
/// two by magnitude), so that the sparse, column, packed and N:M formats all hold it.
fn pruned_mlp() -> ModelSpec {
    let mut rng = Rng(0x5eed);
    let q0 = Qp::from_range(-3.0, 3.0);
    let q1 = Qp::from_range(0.0, 4.0);
    let q2 = Qp::from_range(-4.0, 4.0);
    let mut dense = |f: usize, o: usize, input: Qp, output: Qp| {
        let mut w: Vec<f32> = (0..o * f).map(|_| rng.range(-1.0, 1.0)).collect();
        for group in w.chunks_mut(4) {
            let mut order: Vec<usize> = (0..group.len()).collect();
            order.sort_by(|&a, &b| group[a].abs().total_cmp(&group[b].abs()));
            for &i in &order[..group.len() / 2] {
                group[i] = 0.0;
            }
        }
        let b: Vec<f32> = (0..o).map(|_| rng.range(-0.2, 0.2)).collect();
        dense_layer(&w, &b, f, o, input, output)
    };
    let hidden = with_clamp(dense(16, 12, q0, q1), q1.relu());
    let out = dense(12, 3, q1, q2);
    spec(vec![identity_input(1, 16, q0), hidden, out], 16, 3)
}

/// A dynamically quantized Quantize -> Dense(6 -> 5, ReLU) -> Dense(5 -> 3) model (layer flag bit 0).
fn dynamic_mlp() -> ModelSpec {
    let mut rng = Rng(0xd1a);
    let f = 6;
    let mut layers = vec![LayerSpec {
        dynamic: Some(0),
        ..LayerSpec::new(
            OpSpec::Quantize {
                time_steps: 1,
                features: f,
                a: (0..f).map(|_| rng.range(0.2, 3.0)).collect(),
                b: (0..f).map(|_| rng.range(-2.0, 2.0)).collect(),
            },
            1.0,
            0,
        )
    }];
    let mut inp = f;
    for (out, relu) in [(5, true), (3, false)] {
        let weights = (0..out * inp).map(|_| rng.i8().max(-127)).collect();
        let bias = (0..out)
            .map(|_| (rng.next_u64() % 4096) as i32 - 2048)
            .collect();
        let requant = (0..out)
            .map(|_| {
                let m = (1 << 30) + (rng.next_u64() % (1 << 30)) as i32;
                QuantMultiplier::new_checked(m, 36).expect("a multiplier in range")
            })
            .collect();
        layers.push(LayerSpec {
            act_min: if relu { 0 } else { i8::MIN },
            dynamic: Some(-3),
            ..LayerSpec::new(
                OpSpec::Dense {
                    out_features: out,
                    in_features: inp,
                    weights,
                    bias,
                    requant,
                },
                0.05,
                0,
            )
        });
        inp = out;
    }
    spec(layers, f, 3)
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz_seeds DIR");
        return ExitCode::from(2);
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("{}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let models = [
        ("every-kind", support::every_kind_spec()),
        ("pruned-mlp", pruned_mlp()),
        ("dynamic", dynamic_mlp()),
        ("feature-spec", support::feature_spec_model()),
    ];
    let mut written = 0usize;
    let mut covered = BTreeSet::new();
    let mut blobs = BTreeSet::new();
    for (model, spec) in &models {
        for weight_format in WeightFormat::ALL {
            for target in Target::ALL {
                let options = EncodeOptions {
                    weight_format,
                    target,
                };
                let Ok(blob) = encode_with(spec, &options) else {
                    continue;
                };
                covered.insert(weight_format.name());
                // Formats that resolve to the same layout on a target give the same bytes: keep one.
                if !blobs.insert(blob.clone()) {
                    continue;
                }
                let path = dir.join(format!("{model}-{weight_format}-{target}.blob"));
                if let Err(e) = std::fs::write(&path, &blob) {
                    eprintln!("{}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                written += 1;
            }
        }
    }
    let missing: Vec<&str> = WeightFormat::ALL
        .iter()
        .map(|f| f.name())
        .filter(|f| !covered.contains(f))
        .collect();
    if !missing.is_empty() {
        eprintln!("no seed model encodes in: {}", missing.join(", "));
        return ExitCode::FAILURE;
    }
    if !blobs
        .iter()
        .any(|b| tickq_core::Model::load(b).is_ok_and(|m| m.feature_spec().is_some()))
    {
        eprintln!("no seed carries a feature spec");
        return ExitCode::FAILURE;
    }
    println!("{written} seed blobs in {}", dir.display());
    ExitCode::SUCCESS
}
