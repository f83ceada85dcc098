//! A small MLP with fused ReLU, checked against f32 math on the quantized parameters.

use tickq_core::encode::{LayerSpec, OpSpec, encode};
use tickq_core::{Model, Session};

use crate::support::*;

/// Builds a 4 -> 8 (ReLU) -> 3 MLP from random f32 weights; returns the blob and an f64 reference on int8 inputs.
#[test]
fn mlp_with_relu_matches_float_reference_within_one_lsb() {
    let mut rng = Rng(11);
    let (f, h, c) = (4, 8, 3);
    let w1: Vec<f32> = (0..h * f).map(|_| rng.range(-1.0, 1.0)).collect();
    let b1: Vec<f32> = (0..h).map(|_| rng.range(-0.5, 0.5)).collect();
    let w2: Vec<f32> = (0..c * h).map(|_| rng.range(-1.0, 1.0)).collect();
    let b2: Vec<f32> = (0..c).map(|_| rng.range(-0.5, 0.5)).collect();
    let q_in = Qp::from_range(-3.0, 3.0);
    let q_h = Qp::from_range(0.0, 4.0);
    let q_out = Qp::from_range(-4.0, 4.0);
    let d1 = quantize_dense(&w1, &b1, f, q_in, q_h);
    let d2 = quantize_dense(&w2, &b2, h, q_h, q_out);
    let layers = vec![
        identity_input(1, f, q_in),
        with_clamp(
            LayerSpec::new(
                OpSpec::Dense {
                    out_features: h,
                    in_features: f,
                    weights: d1.weights.clone(),
                    bias: d1.bias_eff.clone(),
                    requant: d1.requant.clone(),
                },
                q_h.scale,
                q_h.zp,
            ),
            q_h.relu(),
        ),
        LayerSpec::new(
            OpSpec::Dense {
                out_features: c,
                in_features: h,
                weights: d2.weights.clone(),
                bias: d2.bias_eff.clone(),
                requant: d2.requant.clone(),
            },
            q_out.scale,
            q_out.zp,
        ),
    ];
    let blob = encode(&spec(layers, f, c)).unwrap();
    let model = Model::load(&blob).unwrap();
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut session = Session::new(&model, &mut arena).unwrap();

    for _ in 0..2000 {
        let x: Vec<i8> = (0..f).map(|_| rng.i8()).collect();
        // Layer 1 in exact real arithmetic on the quantized parameters; output rounding is the only loss, so the
        // integer result may differ by at most 1 LSB (the multiplier's 2^-31 relative error and the f64 reference
        // can only move a value that sits on a rounding boundary).
        let hidden: Vec<i32> = (0..h)
            .map(|o| {
                let acc: f64 = (0..f)
                    .map(|k| {
                        f64::from(d1.weights[o * f + k]) * (f64::from(x[k]) - f64::from(q_in.zp))
                    })
                    .sum::<f64>()
                    + f64::from(d1.bias_q[o]);
                let real = acc * f64::from(q_in.scale) * f64::from(d1.w_scales[o]);
                round_q(real / f64::from(q_h.scale) + f64::from(q_h.zp)).max(i32::from(q_h.zp))
            })
            .collect();
        let pred = session.run_quantized(&x);
        let logits = pred.logits().to_vec();
        // Recompute layer 2 from the reference hidden layer; compare the session's logits.
        let _ = &logits;
        let hidden_session: Vec<i8> = hidden.iter().map(|&v| v as i8).collect();
        for o in 0..c {
            let acc: f64 = (0..h)
                .map(|k| {
                    f64::from(d2.weights[o * h + k])
                        * (f64::from(hidden_session[k]) - f64::from(q_h.zp))
                })
                .sum::<f64>()
                + f64::from(d2.bias_q[o]);
            let real = acc * f64::from(q_h.scale) * f64::from(d2.w_scales[o]);
            let want = round_q(real / f64::from(q_out.scale) + f64::from(q_out.zp));
            // Errors in the hidden layer (at most 1 LSB each) propagate, so allow 1 LSB plus their effect.
            let spread: f64 = (0..h)
                .map(|k| f64::from(d2.weights[o * h + k]).abs())
                .sum::<f64>()
                * f64::from(q_h.scale)
                * f64::from(d2.w_scales[o])
                / f64::from(q_out.scale);
            let diff = (i32::from(logits[o]) - want).abs();
            assert!(
                f64::from(diff) <= 1.0 + spread,
                "o={o} got={} want={want} spread={spread}",
                logits[o]
            );
        }
    }
}
