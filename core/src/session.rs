//! Inference: a model plus a caller-given arena, run layer by layer.
//!
//! [`Session::new`] is the only fallible step: it checks the arena length once.
//! [`Session::run`] then has no error path, does not allocate and cannot panic: every offset it uses was
//! planned and checked by [`Model::load`], and the kernels only use iterators and checked slicing.

#![deny(clippy::indexing_slicing)]

use core::ops::Range;

use crate::error::ArenaTooSmall;
use crate::kernels::{self, Engine, generic};
use crate::model::Model;
use crate::plan::{LayerPlan, Op, Span};
use crate::{MAX_CLASSES, MAX_LAYERS};

/// A model bound to an arena, ready to run.
#[derive(Debug)]
pub struct Session<'m, 'b, 'a> {
    model: &'m Model<'b>,
    arena: &'a mut [u8],
    logits: [i8; MAX_CLASSES],
    /// The exponent of each layer's output in a dynamic model (0 in a static one).
    exponents: [i32; MAX_LAYERS],
}

impl<'m, 'b, 'a> Session<'m, 'b, 'a> {
    /// Binds `model` to `arena`, which must hold at least [`Model::arena_bytes`] bytes.
    ///
    /// The arena needs no alignment and no initialization.
    ///
    /// # Errors
    ///
    /// Returns [`ArenaTooSmall`] if `arena` is shorter than [`Model::arena_bytes`].
    pub fn new(model: &'m Model<'b>, arena: &'a mut [u8]) -> Result<Self, ArenaTooSmall> {
        if arena.len() < model.arena_bytes() {
            return Err(ArenaTooSmall {
                needed: model.arena_bytes(),
                given: arena.len(),
            });
        }
        Ok(Session {
            model,
            arena,
            logits: [0; MAX_CLASSES],
            exponents: [0; MAX_LAYERS],
        })
    }

    /// The model this session runs.
    #[inline]
    pub fn model(&self) -> &'m Model<'b> {
        self.model
    }

    /// Quantizes one sample of `T * F` f32 features (time-major) and runs the model.
    ///
    /// Missing values (when `features` is shorter than [`Model::input_len`]) and NaN values are treated as the
    /// training mean, which quantizes to the input zero point; extra values are ignored.
    pub fn run(&mut self, features: &[f32]) -> Prediction<'_> {
        let engine = self.model.engine();
        if let Some(first) = self.model.plans().first()
            && let Op::Quantize { coefficients } = first.op
            && let Some(out) = self.arena.get_mut(first.slots.out.range())
        {
            #[cfg(feature = "dynamic")]
            if first.dynamic {
                self.exponents[0] =
                    generic::quantize::quantize_dynamic(coefficients, features, out);
                return self.run_layers(&mut |_| {});
            }
            kernels::quantize(engine, &first.out, coefficients, features, out);
        }
        self.run_layers(&mut |_| {})
    }

    /// Runs the model on an already quantized int8 input of `T * F` values, skipping the input quantizer.
    ///
    /// Missing values are the input zero point (see [`Model::input_quant`]); extra values are ignored.
    /// In a dynamic model the input is taken as mantissas with exponent 0.
    pub fn run_quantized(&mut self, input: &[i8]) -> Prediction<'_> {
        self.run_quantized_profiled(input, &mut |_| {})
    }

    /// [`Session::run_quantized`], calling `after_layer(i)` right after layer `i` ran, for every layer in order
    /// (layer 0 being the copy of the input).
    ///
    /// This is for profiling on a device: a callback that reads a cycle counter gives the cost of each layer.
    /// The result is the same as [`Session::run_quantized`]'s, which is this function with a callback that does
    /// nothing.
    pub fn run_quantized_profiled(
        &mut self,
        input: &[i8],
        after_layer: &mut dyn FnMut(usize),
    ) -> Prediction<'_> {
        self.exponents[0] = 0;
        if let Some(first) = self.model.plans().first()
            && let Some(out) = self.arena.get_mut(first.slots.out.range())
        {
            generic::quantize::copy_input(first.out.zp, input, out);
        }
        after_layer(0);
        self.run_layers(after_layer)
    }

    fn run_layers(&mut self, after_layer: &mut dyn FnMut(usize)) -> Prediction<'_> {
        let plans = self.model.plans();
        let engine = self.model.engine();
        for (i, layer) in plans.iter().enumerate().skip(1) {
            #[cfg(feature = "dynamic")]
            if layer.dynamic {
                let e_in = self
                    .exponents
                    .get(usize::from(layer.input_a))
                    .copied()
                    .unwrap_or(0);
                // Dense and Conv1d pick their output's shift; the pools and Flatten keep the input's exponent
                // and run the static kernels (the loader gave them zero point 0 and no clamp).
                let k = if layer.op.weighted().is_some() {
                    step_dynamic(layer, self.arena, e_in)
                } else {
                    step(engine, layer, self.arena);
                    0
                };
                if let Some(slot) = self.exponents.get_mut(i) {
                    *slot = e_in.saturating_add(k);
                }
                after_layer(i);
                continue;
            }
            step(engine, layer, self.arena);
            after_layer(i);
        }
        let (scale, zero_point) = self.model.output_quant();
        let exponent = if self.model.is_dynamic() {
            self.exponents
                .get(plans.len().saturating_sub(1))
                .copied()
                .unwrap_or(0)
        } else {
            0
        };
        let classes = self.model.classes();
        if let Some(last) = plans.last() {
            let out = self.arena.get(last.slots.out.range()).unwrap_or(&[]);
            for (dst, &src) in self.logits.iter_mut().zip(out) {
                *dst = src as i8;
            }
        }
        Prediction {
            logits: self.logits.get(..classes).unwrap_or(&[]),
            scale: if exponent == 0 {
                scale
            } else {
                libm::ldexpf(scale, exponent)
            },
            zero_point,
            exponent,
        }
    }
}

/// The arena around one layer's output: what lies before it, the output itself, and what lies after it.
struct Split<'x> {
    before: &'x mut [u8],
    out: &'x mut [u8],
    after: &'x mut [u8],
    after_start: usize,
}

impl<'x> Split<'x> {
    fn new(arena: &'x mut [u8], out: Range<usize>) -> Self {
        let (before, rest) = arena.split_at_mut(out.start.min(arena.len()));
        let (out_slice, after) = rest.split_at_mut(out.len().min(rest.len()));
        Split {
            before,
            out: out_slice,
            after,
            after_start: out.end,
        }
    }
}

/// Where an input tensor is, which the planner placed entirely before or entirely after the output: the range
/// in `before` (`true`) or in `after` (`false`); `None` if it is neither (never for a loaded model).
#[inline]
fn locate(before_len: usize, after_start: usize, span: Span) -> Option<(bool, Range<usize>)> {
    let end = span.start + span.len;
    if end <= before_len {
        Some((true, span.start..end))
    } else if span.start >= after_start {
        Some((false, span.start - after_start..end - after_start))
    } else {
        None
    }
}

/// An input tensor, mutable.
fn input<'y>(
    before: &'y mut [u8],
    after: &'y mut [u8],
    after_start: usize,
    span: Span,
) -> &'y mut [u8] {
    match locate(before.len(), after_start, span) {
        Some((true, r)) => before.get_mut(r),
        Some((false, r)) => after.get_mut(r),
        None => None,
    }
    .unwrap_or(&mut [])
}

/// An input tensor, read only (the two inputs of an Add may be the same tensor).
fn input_ref<'y>(before: &'y [u8], after: &'y [u8], after_start: usize, span: Span) -> &'y [u8] {
    match locate(before.len(), after_start, span) {
        Some((true, r)) => before.get(r),
        Some((false, r)) => after.get(r),
        None => None,
    }
    .unwrap_or(&[])
}

/// Runs one dynamic Dense or Conv1d layer over its whole allocation (the int8 output, then the i32 values it is
/// rounded from: `5 * T_out * C_out` bytes, which the planner reserved); returns its shift `k`.
#[cfg(feature = "dynamic")]
fn step_dynamic(l: &LayerPlan<'_>, arena: &mut [u8], e_in: i32) -> i32 {
    let slots = &l.slots;
    if slots.pad_len > 0
        && let Some(pad) = arena.get_mut(slots.input.start..slots.input.start + slots.pad_len)
    {
        // A dynamic tensor's zero point is 0.
        pad.fill(0);
    }
    let Split {
        before,
        out,
        after,
        after_start,
    } = Split::new(
        arena,
        Span {
            start: slots.out.start,
            len: 5 * slots.out.len,
        }
        .range(),
    );
    let x = input(before, after, after_start, slots.input);
    fn blocked<'w>(w: &crate::plan::Weighted<'w>) -> Option<(&'w [u8], usize)> {
        match w.weights {
            crate::plan::Weights::Blocked { bytes, block_len } => Some((bytes, block_len)),
            // The loader only lets dynamic layers store blocked weights.
            _ => None,
        }
    }
    match l.op {
        Op::Dense(ref w) => blocked(w).map_or(0, |weights| {
            generic::dynamic::dense_dynamic(&l.out, w, weights, x, out, e_in)
        }),
        Op::Conv1d(ref conv, ref w) => blocked(w).map_or(0, |weights| {
            generic::dynamic::conv1d_dynamic(&l.out, (conv, l.in_shape.1), w, weights, x, out, e_in)
        }),
        // The session calls this for Dense and Conv1d only.
        _ => 0,
    }
}

/// Runs one layer (never layer 0, which the session handles).
fn step(engine: Engine, l: &LayerPlan<'_>, arena: &mut [u8]) {
    let slots = &l.slots;
    if slots.pad_len > 0
        && let Some(pad) = arena.get_mut(slots.input.start..slots.input.start + slots.pad_len)
    {
        pad.fill(l.in_zp as u8);
    }
    let Split {
        before,
        out,
        after,
        after_start,
    } = Split::new(arena, slots.out.range());
    if let Op::Add {
        wa,
        wb,
        zp_b,
        requant,
    } = l.op
    {
        let a = input_ref(before, after, after_start, slots.input);
        let b = input_ref(before, after, after_start, slots.input_b);
        let p = generic::pool::AddParams {
            za: l.in_zp,
            zb: zp_b,
            wa,
            wb,
            requant,
        };
        generic::pool::add(&l.out, &p, a, b, out);
    } else {
        let x = input(before, after, after_start, slots.input);
        kernels::layer(engine, l, x, out);
    }
}

/// The result of one inference: int8 logits, borrowed from the session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction<'s> {
    logits: &'s [i8],
    scale: f32,
    zero_point: i8,
    exponent: i32,
}

impl<'s> Prediction<'s> {
    /// A prediction of a static model (exponent 0).
    #[cfg(feature = "stream")]
    #[inline]
    pub(crate) fn new(logits: &'s [i8], scale: f32, zero_point: i8) -> Self {
        Prediction {
            logits,
            scale,
            zero_point,
            exponent: 0,
        }
    }

    /// The int8 logits, one per class.
    #[inline]
    pub fn logits(&self) -> &'s [i8] {
        self.logits
    }

    /// The predicted class: the first index of the largest logit (0 if there are no logits).
    #[inline]
    pub fn signal(&self) -> usize {
        kernels::argmax(self.logits)
    }

    /// The power-of-two exponent of the logits of a dynamic model (0 for a static one): the logits are mantissas
    /// and a score is `q * scale * 2^exponent`, where `scale` is [`Model::output_quant`]'s.
    #[inline]
    pub fn exponent(&self) -> i32 {
        self.exponent
    }

    /// The dequantized logit of `class`: `scale * (q - zero_point)` (times `2^exponent` for a dynamic model); NaN
    /// if `class` is out of range.
    #[inline]
    pub fn score(&self, class: usize) -> f32 {
        self.logits
            .get(class)
            .map_or(f32::NAN, |&q| self.dequantize(q))
    }

    /// Writes the dequantized logits to `out`, as many as fit.
    #[inline]
    pub fn scores(&self, out: &mut [f32]) {
        for (o, &q) in out.iter_mut().zip(self.logits) {
            *o = self.dequantize(q);
        }
    }

    #[inline]
    fn dequantize(&self, q: i8) -> f32 {
        self.scale * f32::from(i16::from(q) - i16::from(self.zero_point))
    }
}
