//! Inference: a model plus a caller-given arena, run layer by layer.
//!
//! [`Session::new`] is the only fallible step: it checks the arena length once.
//! [`Session::run`] then has no error path, does not allocate and cannot panic: every offset it uses was
//! planned and checked by [`Model::load`], and the kernels only use iterators and checked slicing.

#![deny(clippy::indexing_slicing)]

use core::ops::Range;

use crate::error::ArenaTooSmall;
use crate::kernels;
use crate::model::{LayerKind, LayerPlan, Model};
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
        if let Some(first) = self.model.plans().first()
            && let Some(out) = self
                .arena
                .get_mut(first.out_start..first.out_start + first.out_len)
        {
            if crate::DYNAMIC && first.dynamic {
                self.exponents[0] = kernels::quantize_dynamic(first, features, out);
            } else {
                kernels::quantize(first, features, out);
            }
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
            && let Some(out) = self
                .arena
                .get_mut(first.out_start..first.out_start + first.out_len)
        {
            kernels::copy_input(first, input, out);
        }
        after_layer(0);
        self.run_layers(after_layer)
    }

    fn run_layers(&mut self, after_layer: &mut dyn FnMut(usize)) -> Prediction<'_> {
        let plans = self.model.plans();
        for (i, layer) in plans.iter().enumerate().skip(1) {
            if crate::DYNAMIC && layer.dynamic {
                let e_in = self
                    .exponents
                    .get(usize::from(layer.input_a))
                    .copied()
                    .unwrap_or(0);
                let k = step_dynamic(layer, self.arena, e_in);
                if let Some(slot) = self.exponents.get_mut(i) {
                    *slot = e_in.saturating_add(k);
                }
            } else {
                step(layer, self.arena);
            }
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
            let out = self
                .arena
                .get(last.out_start..last.out_start + last.out_len)
                .unwrap_or(&[]);
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
    before: &'x [u8],
    out: &'x mut [u8],
    after: &'x [u8],
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

/// An input tensor, which the planner placed entirely before or entirely after the output.
fn input<'y>(
    before: &'y [u8],
    after: &'y [u8],
    after_start: usize,
    start: usize,
    len: usize,
) -> &'y [u8] {
    let end = start + len;
    if end <= before.len() {
        before.get(start..end).unwrap_or(&[])
    } else if start >= after_start {
        after
            .get(start - after_start..end - after_start)
            .unwrap_or(&[])
    } else {
        &[]
    }
}

/// Runs one dynamic Dense layer over its whole allocation (output and i32 scratch); returns its shift `k`.
fn step_dynamic(l: &LayerPlan<'_>, arena: &mut [u8], e_in: i32) -> i32 {
    let Split {
        before,
        out,
        after,
        after_start,
    } = Split::new(arena, l.out_start..l.out_start + l.scratch_len);
    let x = input(before, after, after_start, l.in_start, l.in_len);
    if l.kind == LayerKind::Dense {
        kernels::dense_dynamic(l, x, out, e_in)
    } else {
        // The loader only lets Quantize and Dense be dynamic.
        0
    }
}

/// Runs one layer (never layer 0, which the session handles).
fn step(l: &LayerPlan<'_>, arena: &mut [u8]) {
    if l.pad_len > 0
        && let Some(pad) = arena.get_mut(l.in_start..l.in_start + l.pad_len)
    {
        pad.fill(l.in_zp as u8);
    }
    let Split {
        before,
        out,
        after,
        after_start,
    } = Split::new(arena, l.out_start..l.out_start + l.out_len);
    let x = input(before, after, after_start, l.in_start, l.in_len);
    match l.kind {
        LayerKind::Dense => kernels::dense(l, x, out),
        LayerKind::Conv1d => kernels::conv1d(l, x, out),
        LayerKind::Lut => kernels::lut(l.aux, x, out),
        LayerKind::MaxPool1d => kernels::max_pool(l, x, out),
        LayerKind::AvgPool1d => kernels::avg_pool(l, l.kernel, l.stride, x, out),
        LayerKind::GlobalAvgPool => kernels::avg_pool(l, l.in_t, 1, x, out),
        LayerKind::Flatten => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = v;
            }
        }
        LayerKind::Add => {
            let b = input(before, after, after_start, l.in_b_start, l.in_b_len);
            kernels::add(l, x, b, out);
        }
        // The loader only accepts Quantize as layer 0, which `step` never sees.
        LayerKind::Quantize => {}
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
    /// The int8 logits, one per class.
    #[inline]
    pub fn logits(&self) -> &'s [i8] {
        self.logits
    }

    /// The predicted class: the first index of the largest logit (0 if there are no logits).
    #[inline]
    pub fn signal(&self) -> usize {
        let mut best = 0;
        let mut best_value = i8::MIN;
        for (i, &v) in self.logits.iter().enumerate() {
            if v > best_value || i == 0 {
                best = i;
                best_value = v;
            }
        }
        best
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
