//! The Dense kernel of weight format 5, `dense-dsp`: weights laid out for the Cortex-M4's DSP extension.
//!
//! # The layout
//!
//! Each channel's row of `K` weights is padded with zeros to `K4 = round_up(K, 4)` and cut into words of 4
//! consecutive weights, in their natural order.
//! Channels go in groups of [`GROUP`] = 4: group `g` holds channels `4g` to `4g + 3` and, for each word `q`, the 4
//! channels' words `q` one after the other (16 bytes per word step).
//! The last `C_out % 4` channels follow as plain rows of `K4` bytes each.
//! So `w[o][k]` is at byte `(o / 4) * 4 * K4 + (k / 4) * 16 + (o % 4) * 4 + k % 4` for `o < 4 * floor(C_out / 4)`,
//! and at `4 * floor(C_out / 4) * K4 + (o - 4 * floor(C_out / 4)) * K4 + k` after that (`docs/BLOB.md`).
//!
//! # Why this shape
//!
//! `SMLAD` multiplies two pairs of 16-bit lanes and adds both products to an accumulator; `SXTB16` sign-extends
//! bytes 0 and 2 of a word into two 16-bit lanes, and with `ROR #8` bytes 1 and 3.
//! Applied to a weight word `(w0, w1, w2, w3)` and an input word `(x0, x1, x2, x3)` alike, they give `(w0, w2)`,
//! `(w1, w3)`, `(x0, x2)` and `(x1, x3)`, and two `SMLAD`s add `w0 x0 + w2 x2 + w1 x1 + w3 x3`: 4 multiply-adds
//! for one word of weights.
//! A group of 4 channels shares each input word, so one word step is 16 multiply-adds.
//! The Cortex-M4 kernel (`kernels::arm`) sign-extends the inputs once per layer, not once per group: it first
//! expands every input word into its two 16-bit pairs, so a word step is one `LDRD` of those pairs, 2 `LDRD` of
//! the 4 channels' weight words, 8 `SXTB16` of the weights and 8 `SMLAD`: 19 instructions, 1.19 per
//! multiply-add, with the 4 accumulators and every operand in registers.
//! The loop is unrolled 8 times, so its `SUBS` and `BNE` add 2 instructions per 8 steps.
//!
//! # Targets
//!
//! On `thumbv7em` targets (Cortex-M4 and M7, which always have the DSP extension) the build script sets
//! `cfg(tickq_dsp)` and the inline assembly of `kernels::arm` runs the layer: a whole layer with `LDRD` when the
//! weights are word aligned (a blob whose first byte is, as `tickq export` arranges, has every section aligned),
//! and this module's [`dense_simple`] otherwise.
//! Everywhere else this module's portable loop computes the same sums.
//! Integer sums are exact (the loader bounds every channel below `2^31`), so both give the same bytes.

use crate::format::layout::dsp::index;
#[cfg(not(tickq_dsp))]
use crate::format::layout::dsp::{GROUP, WORD, padded_row};
use crate::format::le_i32;
use crate::plan::{Channels, OutQuant};
use crate::requant::{MULTIPLIER_MIN, QuantMultiplier, requantize};

/// A `dense-dsp` layer as its kernels see it: the weights, the per-channel sections, the shape and the output
/// quantization, with `shifts_split` (every shift in `[33, 62]`, checked at load).
pub(crate) struct DspLayer<'a> {
    pub weights: &'a [u8],
    pub bias: &'a [u8],
    pub multipliers: &'a [u8],
    pub shifts: &'a [u8],
    pub row_len: usize,
    #[cfg_attr(not(tickq_dsp), allow(dead_code, reason = "read by `dense_simple`"))]
    pub out_c: usize,
    #[cfg_attr(
        not(tickq_dsp),
        allow(dead_code, reason = "only the Cortex-M4 assembly reads it")
    )]
    pub shifts_split: bool,
    pub out_zp: i8,
    pub act_min: i8,
    pub act_max: i8,
}

impl<'a> DspLayer<'a> {
    /// The view of a loaded layer.
    #[inline(always)]
    pub(crate) fn new(
        q: &OutQuant,
        ch: &Channels<'a>,
        (weights, row_len): (&'a [u8], usize),
    ) -> Self {
        DspLayer {
            weights,
            bias: ch.bias,
            multipliers: ch.multipliers,
            shifts: ch.shifts,
            row_len,
            out_c: ch.shifts.len(),
            shifts_split: ch.shifts_split,
            out_zp: q.zp,
            act_min: q.act_min,
            act_max: q.act_max,
        }
    }

    /// The output quantization, for the shared requantization.
    #[cfg_attr(not(tickq_dsp), allow(dead_code, reason = "read by `dense_simple`"))]
    #[inline(always)]
    pub(crate) fn out_quant(&self) -> OutQuant {
        OutQuant {
            scale: 1.0,
            zp: self.out_zp,
            act_min: self.act_min,
            act_max: self.act_max,
        }
    }
}

/// Sums `w[e] * x[e]` over the first `min(w.len(), x.len())` int8 values stored as bytes.
#[cfg(not(tickq_dsp))]
#[inline(always)]
fn dot_bytes(w: &[u8], x: &[u8]) -> i32 {
    let mut acc = 0i32;
    for (&a, &b) in w.iter().zip(x) {
        acc = acc.wrapping_add(i32::from(a as i8) * i32::from(b as i8));
    }
    acc
}

/// [`requantize`], computed with 32-bit halves when the right shift is at least 33 (multipliers below 1/4,
/// the usual case), which a 32-bit core does in a few instructions instead of 64-bit shifts by a variable amount.
///
/// With `v = acc * M` (an exact i64, `|v| < 2^62`) and `s >= 33`, `round_shift(v, s) = (v + 2^(s-1) + sgn(v)) >>
/// s` (`sgn` being -1 for negative `v`, else 0) equals `((hi(v + sgn) + 2^(s-33)) >> (s - 32))`: adding a
/// multiple of `2^32` commutes with taking the high word, and arithmetic shifts compose.
/// The result is within `2^31` in magnitude, so adding the zero point and clamping in i32 is exact.
/// Other shifts (and out-of-range multipliers, which the loader rejects) take [`requantize`] itself, with the
/// multiplier and shift clamped as [`QuantMultiplier::from_validated`] does: the result equals
/// `requantize(acc, QuantMultiplier::from_validated(m, s), ..)` for every input.
#[cfg_attr(
    tickq_dsp,
    allow(dead_code, reason = "the portable kernel's; the assembly has its own")
)]
#[inline(always)]
pub(crate) fn requantize_split(acc: i32, m: i32, s: u8, out_zp: i8, lo: i8, hi: i8) -> i8 {
    // The loader checked `m >= 2^30` and `1 <= s <= 62`; other values take the general path, which clamps them.
    if !(33..=62).contains(&s) || m < MULTIPLIER_MIN {
        return requantize(acc, QuantMultiplier::from_validated(m, s), out_zp, lo, hi);
    }
    let s = u32::from(s);
    let v = i64::from(acc) * i64::from(m);
    let high = ((v + (v >> 63)) >> 32) as i32;
    let y = (high + (1 << (s - 33))) >> (s - 32);
    (y + i32::from(out_zp))
        .max(i32::from(lo))
        .min(i32::from(hi)) as i8
}

/// The requantization of the Cortex-M4 layer kernel (`dsp::groups`), step by step as its instructions do it,
/// for a multiplier `m >= 2^30` and a shift `s` in `[33, 62]` (what the loader and `Channels::shifts_split`
/// guarantee there); `c = 1 + 2 * out_zp`.
///
/// - `SMULL`: `v = acc * m` exactly, as a low and a high word.
/// - `ADDS`/`ADC` with the high word shifted right by 31: `v + sgn(v)` (`sgn` being -1 for negative `v`).
/// - `ASR` by `s - 33`, `ADD c`, then `SSAT #8` of that shifted right by 1: `((h >> (s - 33)) + 1) >> 1` is
///   `(h + 2^(s-33)) >> (s - 32)` (with `h = hi(v + sgn)` and `q = h >> (s - 33)`, adding 1 and halving floors
///   `(q + 1) / 2`, the same as flooring `(h + 2^(s-33)) / 2^(s-32)`), which [`requantize_split`] shows is
///   `round_shift(v, s)`; `c` adds the zero point as `2 * out_zp` before the halving.
/// - `SSAT #8` then, per byte, `SSUB8`/`SEL` against `act_min` and `act_max`: the clamp of [`requantize`],
///   since `[act_min, act_max]` lies within the int8 range (and with `act_min > act_max` both give `act_max`).
///
/// The result equals `requantize(acc, QuantMultiplier::from_validated(m, s), out_zp, lo, hi)` (proptest below);
/// `dsp::groups` must compute exactly this, and the firmware test checks it on the device.
#[cfg_attr(
    not(test),
    allow(
        dead_code,
        reason = "the specification of the assembly, checked by tests"
    )
)]
pub(crate) fn requantize_asm_model(acc: i32, m: i32, s: u8, c: i32, lo: i8, hi: i8) -> i8 {
    let v = i64::from(acc) * i64::from(m);
    let (v_lo, v_hi) = (v as u32, (v >> 32) as i32);
    let sgn = v_hi >> 31;
    let (_, carry) = v_lo.overflowing_add(sgn as u32);
    let h = v_hi.wrapping_add(sgn).wrapping_add(i32::from(carry));
    // `ASR` by a register takes its low byte; `s - 33` is in `[0, 29]` here.
    let q = h >> (u32::from(s.wrapping_sub(33)) & 31);
    let y = (q.wrapping_add(c) >> 1).clamp(-128, 127);
    y.max(i32::from(lo)).min(i32::from(hi)) as i8
}

/// The portable word loop of one channel: `sum_q sum_e w[q * stride + e] * x[q][e]`, over the word steps both
/// have; `stride` is `GROUP_STEP` for a channel of a group and [`WORD`] for a plain row.
#[cfg(not(tickq_dsp))]
#[inline(never)]
fn channel_words(w: &[u8], stride: usize, xs: &[[u8; WORD]]) -> i32 {
    let mut acc = 0i32;
    for (word, x) in w.chunks(stride.max(1)).zip(xs) {
        acc = acc.wrapping_add(dot_bytes(word.get(..WORD).unwrap_or(&[]), x));
    }
    acc
}

/// Dense over `dense-dsp` weights: `out[o] = requant(b_eff[o] + sum_k w[o][k] * x[k])`.
///
/// On `thumbv7em` the Cortex-M4 assembly (`kernels::arm`) runs the layer, with [`dense_simple`] for the cases it
/// leaves out; elsewhere [`dense_portable`]'s word loops do. All compute the same exact sums and requantize them
/// identically.
#[inline(never)]
pub(crate) fn dense(l: &DspLayer<'_>, x: &[u8], out: &mut [u8]) {
    let x = x.get(..l.row_len).unwrap_or(x);
    #[cfg(tickq_dsp)]
    crate::kernels::arm::dense(l, x, out);
    #[cfg(not(tickq_dsp))]
    dense_portable(l, x, out);
}

/// The plainest form of [`dense`], one weight at a time through [`index`]: small code for the cases the
/// Cortex-M4 assembly leaves out (unaligned blobs, multipliers of 1/4 or more, very short or long rows).
#[cfg_attr(
    not(tickq_dsp),
    allow(
        dead_code,
        reason = "only the Cortex-M4 falls back to it (and a test checks it)"
    )
)]
#[inline(never)]
pub(crate) fn dense_simple(l: &DspLayer<'_>, x: &[u8], out: &mut [u8]) {
    let channels = out
        .iter_mut()
        .zip(l.bias.chunks_exact(4))
        .zip(l.multipliers.chunks_exact(4))
        .zip(l.shifts);
    for (o, (((y, b), m), &s)) in channels.enumerate() {
        let mut acc = le_i32(b);
        for (k, &v) in x.iter().enumerate() {
            let w = l
                .weights
                .get(index(o, k, l.row_len, l.out_c))
                .map_or(0, |&w| w as i8);
            acc = acc.wrapping_add(i32::from(w) * i32::from(v as i8));
        }
        *y = super::blocked::requantize_channel(&l.out_quant(), acc, m, s);
    }
}

/// The word sums of one unit: a group of [`GROUP`] channels (`width = GROUP`) or one plain row (`width = 1`),
/// into `acc[..width]`.
#[cfg(not(tickq_dsp))]
#[inline(always)]
fn unit_words(w: &[u8], width: usize, xs: &[[u8; WORD]], acc: &mut [i32; GROUP]) {
    let stride = width * WORD;
    for (c, a) in acc.iter_mut().take(width).enumerate() {
        *a = channel_words(w.get(c * WORD..).unwrap_or(&[]), stride, xs);
    }
}

/// The portable [`dense`]: `x` holds the `row_len` inputs; its last `row_len % 4` values (not a whole word) are
/// multiplied with the first bytes of each channel's last word, whose other bytes are padding.
/// The groups and then the plain rows go through one loop (a unit of `width` 4 or 1 channels), so that the
/// requantization is compiled once.
#[cfg(not(tickq_dsp))]
fn dense_portable(l: &DspLayer<'_>, x: &[u8], out: &mut [u8]) {
    let (xs, x_tail) = x.as_chunks::<WORD>();
    let k4 = padded_row(l.row_len);
    let groups = l.weights.chunks_exact((GROUP * k4).max(1));
    let rows = groups.remainder().chunks_exact(k4.max(1));
    let units = groups.map(|w| (w, GROUP)).chain(rows.map(|w| (w, 1)));
    let mut channels = out
        .iter_mut()
        .zip(l.bias.chunks_exact(4))
        .zip(l.multipliers.chunks_exact(4))
        .zip(l.shifts);
    for (w, width) in units {
        let mut acc = [0i32; GROUP];
        unit_words(w, width, xs, &mut acc);
        if !x_tail.is_empty() {
            // The partial last word: at `xs.len()` word steps of `width * 4` bytes.
            let tail = w.get(xs.len() * width * WORD..).unwrap_or(&[]);
            for (a, word) in acc.iter_mut().zip(tail.chunks(WORD)) {
                *a = a.wrapping_add(dot_bytes(word, x_tail));
            }
        }
        for (&a, (((o, b), m), &s)) in acc.iter().zip(channels.by_ref().take(width)) {
            let sum = le_i32(b).wrapping_add(a);
            *o = requantize_split(sum, le_i32(m), s, l.out_zp, l.act_min, l.act_max) as u8;
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    reason = "tests index like the formulas they check"
)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The split requantization equals [`requantize`] for every accumulator, multiplier, shift and clamp.
        #[test]
        fn requantize_split_matches(
            acc in proptest::prelude::any::<i32>(),
            m in proptest::prelude::any::<i32>(),
            s in proptest::prelude::any::<u8>(),
            zp in proptest::prelude::any::<i8>(),
            a in proptest::prelude::any::<i8>(),
            b in proptest::prelude::any::<i8>(),
        ) {
            let q = QuantMultiplier::from_validated(m, s);
            // Any pair, ordered or not: both clamp with max, then min.
            let (lo, hi) = (a, b);
            proptest::prop_assert_eq!(requantize_split(acc, m, s, zp, lo, hi), requantize(acc, q, zp, lo, hi));
        }
    }

    #[test]
    fn requantize_split_edges() {
        for s in [0u8, 32, 33, 34, 40, 61, 62, 63, 255] {
            for m in [i32::MIN, 0, (1 << 30) - 1, 1 << 30, (1 << 30) + 1, i32::MAX] {
                let q = QuantMultiplier::from_validated(m, s);
                for acc in [
                    i32::MIN,
                    i32::MIN + 1,
                    -(1 << 20) - 1,
                    -1,
                    0,
                    1,
                    1 << 20,
                    i32::MAX,
                ] {
                    for (lo, hi) in [(-128, 127), (0, 127), (-5, 5), (3, 3)] {
                        for zp in [-128, -3, 0, 7, 127] {
                            assert_eq!(
                                requantize_split(acc, m, s, zp, lo, hi),
                                requantize(acc, q, zp, lo, hi),
                                "{acc} {m} {s} {zp} {lo} {hi}"
                            );
                        }
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// The requantization of the Cortex-M4 assembly, as [`requantize_asm_model`] specifies it step by step,
        /// equals [`requantize`] wherever the kernel uses it: multipliers of at least `2^30`, shifts 33 to 62, any
        /// accumulator, zero point and clamp.
        #[test]
        fn requantize_asm_model_matches(
            acc in proptest::prelude::any::<i32>(),
            m in MULTIPLIER_MIN..=i32::MAX,
            s in 33u8..=62,
            zp in proptest::prelude::any::<i8>(),
            a in proptest::prelude::any::<i8>(),
            b in proptest::prelude::any::<i8>(),
        ) {
            let q = QuantMultiplier::from_validated(m, s);
            let c = 1 + 2 * i32::from(zp);
            proptest::prop_assert_eq!(requantize_asm_model(acc, m, s, c, a, b), requantize(acc, q, zp, a, b));
        }
    }

    #[test]
    fn requantize_asm_model_edges() {
        // Every 7th shift under Miri (`.ci/run`), which interprets every step; every shift natively.
        for s in (33u8..=62).step_by(if cfg!(miri) { 7 } else { 1 }) {
            for m in [MULTIPLIER_MIN, MULTIPLIER_MIN + 1, i32::MAX - 1, i32::MAX] {
                let q = QuantMultiplier::from_validated(m, s);
                for acc in [
                    i32::MIN,
                    i32::MIN + 1,
                    -(1 << 24),
                    -3,
                    -1,
                    0,
                    1,
                    2,
                    1 << 24,
                    i32::MAX,
                ] {
                    for (lo, hi) in [(-128, 127), (0, 127), (-5, 5), (3, 3), (9, -9)] {
                        for zp in [-128i8, -1, 0, 5, 127] {
                            let c = 1 + 2 * i32::from(zp);
                            assert_eq!(
                                requantize_asm_model(acc, m, s, c, lo, hi),
                                requantize(acc, q, zp, lo, hi),
                                "{acc} {m} {s} {zp} {lo} {hi}"
                            );
                        }
                    }
                }
            }
        }
        // Exact halves round away from zero: 3 * 2^30 * 2^30 / 2^62 = 0.75 -> 1, and the negative of it.
        let c = 1;
        assert_eq!(requantize_asm_model(3 << 28, 1 << 30, 60, c, -128, 127), 1);
        assert_eq!(
            requantize_asm_model(-(3 << 28), 1 << 30, 60, c, -128, 127),
            -1
        );
        assert_eq!(requantize_asm_model(1 << 29, 1 << 30, 60, c, -128, 127), 1);
        assert_eq!(
            requantize_asm_model(-(1 << 29), 1 << 30, 60, c, -128, 127),
            -1
        );
    }

    /// [`dense_simple`] (the Cortex-M4's fallback) gives the bytes of [`dense_portable`] on loaded `dense-dsp`
    /// layers: row lengths and channel counts around the word and group sizes, ratios of 1/4 and more (shifts
    /// of 32 and less, which the assembly leaves to it) and below.
    #[cfg(all(feature = "alloc", not(tickq_dsp)))]
    #[test]
    fn dense_simple_matches_portable() {
        use crate::encode::{
            EncodeOptions, LayerSpec, ModelSpec, OpSpec, WeightFormat, encode_with,
        };
        let mut seed = 0x5eed_u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as u32
        };
        for (in_c, out_c, ratio) in [
            (1, 1, 0.01),
            (5, 3, 0.3),
            (13, 7, 0.002),
            (29, 9, 0.7),
            (32, 4, 0.01),
            (70, 13, 1.5),
        ] {
            let weights = (0..in_c * out_c).map(|_| next() as i8).collect();
            let bias = (0..out_c).map(|_| (next() % 2001) as i32 - 1000).collect();
            let requant = (0..out_c)
                .map(|o| QuantMultiplier::from_ratio(ratio * (1.0 + o as f64 / 8.0)).unwrap())
                .collect();
            let dense = OpSpec::Dense {
                out_features: out_c,
                in_features: in_c,
                weights,
                bias,
                requant,
            };
            let quantize = OpSpec::Quantize {
                time_steps: 1,
                features: in_c,
                a: vec![1.0; in_c],
                b: vec![0.0; in_c],
            };
            let spec = ModelSpec {
                name: "simple".into(),
                feature_names: (0..in_c).map(|i| std::format!("f{i}")).collect(),
                label_names: (0..out_c).map(|i| std::format!("c{i}")).collect(),
                data_hash: [0; 32],
                tickq_version: "test".into(),
                layers: vec![
                    LayerSpec::new(quantize, 1.0, 0),
                    LayerSpec {
                        act_min: -20,
                        act_max: 100,
                        ..LayerSpec::new(dense, 1.0, 3)
                    },
                ],
                feature_spec: None,
            };
            let options = EncodeOptions::format(WeightFormat::DenseDsp);
            let blob = encode_with(&spec, &options).unwrap();
            let model = crate::Model::load(&blob).unwrap();
            let plan = &model.plans()[1];
            let crate::plan::Op::Dense(w) = plan.op else {
                panic!("layer 1 is not Dense");
            };
            let crate::plan::Weights::Dsp { bytes } = w.weights else {
                panic!("layer 1 is not dense-dsp");
            };
            let l = &DspLayer::new(&plan.out, &w.channels, (bytes, w.row_len));
            // Two inputs per shape under Miri (`.ci/run`), which interprets every step.
            for _ in 0..if cfg!(miri) { 2 } else { 20 } {
                let x: std::vec::Vec<u8> = (0..in_c).map(|_| next() as u8).collect();
                let (mut a, mut b) = (std::vec![0u8; out_c], std::vec![0u8; out_c]);
                dense_simple(l, &x, &mut a);
                dense_portable(l, &x, &mut b);
                assert_eq!(a, b, "{in_c} -> {out_c}, ratio {ratio}");
            }
        }
    }
}
