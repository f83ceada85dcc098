//! The validated model and its public API: what a loaded blob says about itself (shapes, layers, metadata,
//! quantization) and which backend runs it.
//!
//! [`Model::load`] lives in `load`; this module only reads the plans it produced.

use heapless::Vec;

use crate::MAX_LAYERS;
#[cfg(any(feature = "stream", feature = "alloc"))]
use crate::features::FeatureSpec;
use crate::format::{LayerKind, NO_INPUT, Padding, WeightLayout};
use crate::kernels::{Backend, BackendUnavailable, Engine};
use crate::load::metadata::Metadata;
#[cfg(feature = "sparse-formats")]
use crate::plan::Weights;
use crate::plan::{LayerPlan, Op};

/// How one input sample is laid out by the model's users (the blob's header flag bit 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputLayout {
    /// `[T, F]`: time steps outside, features inside; what [`Session::run`](crate::Session::run) takes.
    TimeMajor,
    /// `[C, T]`: channels outside, time steps inside, as PyTorch's `Conv1d` takes it.
    ChannelsFirst,
}

impl InputLayout {
    /// Writes `sample` (`time_steps * features` values in this layout) into `out` in time-major order: a copy
    /// for [`InputLayout::TimeMajor`], the transpose `out[t * F + c] = sample[c * T + t]` for
    /// [`InputLayout::ChannelsFirst`]. Returns `false`, writing nothing, when either slice is not
    /// `time_steps * features` long.
    pub fn to_time_major(
        self,
        sample: &[f32],
        time_steps: usize,
        features: usize,
        out: &mut [f32],
    ) -> bool {
        let Some(len) = time_steps.checked_mul(features) else {
            return false;
        };
        if sample.len() != len || out.len() != len {
            return false;
        }
        match self {
            Self::TimeMajor => out.copy_from_slice(sample),
            Self::ChannelsFirst => {
                for (c, channel) in sample.chunks_exact(time_steps.max(1)).enumerate() {
                    for (t, &v) in channel.iter().enumerate() {
                        out[t * features + c] = v;
                    }
                }
            }
        }
        true
    }
}

/// A blob that passed validation, with its arena plan and the backend that runs it; borrows the blob bytes (zero
/// copy).
///
/// [`Model::load`] picks the fastest [`Backend`] the CPU has; [`Model::set_backend`] pins another one.
#[derive(Debug, Clone)]
pub struct Model<'b> {
    pub(crate) blob: &'b [u8],
    pub(crate) layers: Vec<LayerPlan<'b>, MAX_LAYERS>,
    pub(crate) arena_bytes: usize,
    pub(crate) metadata: Metadata<'b>,
    pub(crate) crc: u32,
    pub(crate) version: u16,
    /// The offset of the feature-spec section (version 5), 0 when the blob has none; [`Model::feature_spec`]
    /// reads it again rather than keeping a copy, so a model without one costs 4 bytes, not a `FeatureSpec`.
    pub(crate) feature_spec_at: u32,
    pub(crate) engine: Engine,
}

impl<'b> Model<'b> {
    /// How the model's users lay out one sample: the blob's header flag
    /// [`FLAG_CHANNELS_FIRST`](crate::format::header::FLAG_CHANNELS_FIRST). [`Session::run`](crate::Session::run)
    /// takes time-major values either way; [`InputLayout::to_time_major`] converts a channels-first sample.
    pub fn input_layout(&self) -> InputLayout {
        let flags = u16::from_le_bytes([
            self.blob[crate::format::header::FLAGS.start],
            self.blob[crate::format::header::FLAGS.start + 1],
        ]);
        if flags & crate::format::header::FLAG_CHANNELS_FIRST != 0 {
            InputLayout::ChannelsFirst
        } else {
            InputLayout::TimeMajor
        }
    }

    /// The exact number of scratch bytes a [`Session`](crate::Session) needs.
    #[inline]
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes
    }

    /// The number of f32 values one input sample has: `T * F`.
    #[inline]
    pub fn input_len(&self) -> usize {
        let (t, f) = self.input_shape();
        t * f
    }

    /// The input shape `(T, F)`: time steps and features, flattened time-major.
    #[inline]
    pub fn input_shape(&self) -> (usize, usize) {
        self.layers.first().map_or((0, 0), |l| l.out_shape)
    }

    /// The number of output classes (logits).
    #[inline]
    pub fn classes(&self) -> usize {
        self.layers.last().map_or(0, |l| l.out_shape.1)
    }

    /// A summary of each layer, in execution order.
    pub fn layers(&self) -> impl Iterator<Item = LayerInfo> + '_ {
        self.layers.iter().enumerate().map(layer_info)
    }

    /// The metadata block.
    #[inline]
    pub fn metadata(&self) -> Metadata<'b> {
        self.metadata
    }

    /// The feature spec the blob carries (format version 5): which features over which windows, in which trade
    /// units, the model's input comes from; `None` for a blob without one (feature vectors in).
    ///
    /// The section was checked at load (every field, the feature count and the metadata's feature names), so
    /// this reads its 328 bytes again without failing.
    ///
    /// Only builds with the `stream` or the `alloc` feature read the spec (and check every field at load); lean
    /// firmware without either checks the section's placement and cannot read it.
    #[cfg(any(feature = "stream", feature = "alloc"))]
    pub fn feature_spec(&self) -> Option<FeatureSpec> {
        let start = self.feature_spec_at as usize;
        if start == 0 {
            return None;
        }
        let bytes = self
            .blob
            .get(start..start.checked_add(crate::format::feature_spec::LEN)?)?;
        crate::load::feature_spec::parse(bytes, start).ok()
    }

    /// The CRC-32 stored in (and verified against) the blob.
    #[inline]
    pub fn crc32(&self) -> u32 {
        self.crc
    }

    /// The blob format version.
    #[inline]
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The blob length in bytes.
    #[inline]
    pub fn blob_len(&self) -> usize {
        self.blob.len()
    }

    /// The blob bytes this model borrows.
    #[inline]
    pub fn blob(&self) -> &'b [u8] {
        self.blob
    }

    /// Whether the model is dynamically quantized (every layer carries the dynamic flag): activations are int8
    /// mantissas with a per-inference power-of-two exponent (`docs/ARITHMETIC.md`).
    #[inline]
    pub fn is_dynamic(&self) -> bool {
        self.layers.first().is_some_and(|l| l.dynamic)
    }

    /// The quantization of the logits: `(scale, zero_point)`.
    ///
    /// For a dynamic model the scale is the reference scale; each prediction adds its exponent
    /// ([`Prediction::exponent`](crate::Prediction::exponent)).
    #[inline]
    pub fn output_quant(&self) -> (f32, i8) {
        self.layers
            .last()
            .map_or((1.0, 0), |l| (l.out.scale, l.out.zp))
    }

    /// The quantization of the int8 input that [`Session::run_quantized`](crate::Session::run_quantized) takes:
    /// `(scale, zero_point)`.
    #[inline]
    pub fn input_quant(&self) -> (f32, i8) {
        self.layers
            .first()
            .map_or((1.0, 0), |l| (l.out.scale, l.out.zp))
    }

    /// The backend that runs this model's kernels: the best one [`Model::load`] found on this CPU, or the one
    /// [`Model::set_backend`] pinned.
    #[inline]
    pub fn backend(&self) -> Backend {
        self.engine.backend()
    }

    /// Pins the backend that runs this model's kernels (for tests, benchmarks, and deployments that must not
    /// change behaviour with the machine); every backend gives the same bytes.
    ///
    /// # Errors
    ///
    /// Returns [`BackendUnavailable`] if this build or this CPU does not have `backend`
    /// ([`Backend::is_available`]); the model keeps its backend then.
    pub fn set_backend(&mut self, backend: Backend) -> Result<(), BackendUnavailable> {
        self.engine = Engine::select(backend)?;
        Ok(())
    }

    #[inline]
    pub(crate) fn engine(&self) -> Engine {
        self.engine
    }

    #[inline]
    pub(crate) fn plans(&self) -> &[LayerPlan<'b>] {
        &self.layers
    }
}
/// A public summary of one layer, for inspection tools.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerInfo {
    /// The layer's index in the table.
    pub index: usize,
    /// The operation.
    pub kind: LayerKind,
    /// The layer producing the first input; `None` for the model input.
    pub input: Option<usize>,
    /// The layer producing the second input (Add only).
    pub input_b: Option<usize>,
    /// The input shape `(T, C)`; for Quantize, the model input shape.
    pub in_shape: (usize, usize),
    /// The output shape `(T, C)`.
    pub out_shape: (usize, usize),
    /// The kernel size (0 where unused).
    pub kernel: usize,
    /// The stride (0 where unused).
    pub stride: usize,
    /// The dilation (0 where unused).
    pub dilation: usize,
    /// The padding (Conv1d; `Valid` otherwise).
    pub padding: Padding,
    /// The output scale.
    pub out_scale: f32,
    /// The output zero point.
    pub out_zero_point: i8,
    /// The lower output clamp.
    pub act_min: i8,
    /// The upper output clamp.
    pub act_max: i8,
    /// The number of stored parameters: weights (without padding; for sparse and N:M layers the values the blob
    /// stores), biases, multipliers, table entries.
    pub params: usize,
    /// The number of blob bytes in this layer's sections, as stored (sparse sections are smaller).
    pub bytes: usize,
    /// How the weights are stored (Dense and Conv1d); `None` for layers without weights.
    pub weight_format: Option<WeightLayout>,
    /// The logical weight count: `out * in` (Dense) or `out * kernel * in` (Conv1d); 0 without weights.
    pub weights_total: usize,
    /// The non-zero weights, counted from what the blob stores; 0 without weights.
    pub weights_nonzero: usize,
    /// Multiply-accumulates (or element operations) per inference; for sparse and N:M layers, those over the
    /// stored weights only.
    pub macs: u64,
    /// The byte offset of the output tensor in the arena.
    pub arena_offset: usize,
    /// The byte length of the output tensor (without any pad prefix).
    pub arena_len: usize,
}

// Always inlined, so that a caller reading one field (firmware summing `macs`) keeps only that field's code.
#[inline(always)]
fn layer_info((index, l): (usize, &LayerPlan<'_>)) -> LayerInfo {
    let input = |v: u16| (v != NO_INPUT).then_some(usize::from(v));
    let (in_t, in_c) = l.in_shape;
    let (out_t, out_c) = l.out_shape;
    let out_elems = (out_t * out_c) as u64;
    let weighted = l.op.weighted();
    let weights_total = weighted.map_or(0, |w| out_c * w.row_len);
    // The weights the section stores: every one for the dense layouts, the stored values for sparse and N:M
    // (N:M may store zeros), the non-zeros for the column formats (whose packed fillers are not weights).
    let stored_weights = weighted.map_or(0, |w| match w.weights {
        #[cfg(feature = "sparse-formats")]
        Weights::Sparse(s) => s.values.len(),
        #[cfg(feature = "sparse-formats")]
        Weights::NM(nm) => nm.values.len(),
        #[cfg(feature = "sparse-formats")]
        Weights::Columns(_) | Weights::Packed(_) => w.nonzero,
        _ => weights_total,
    });
    let (kernel, stride, dilation, padding) = match l.op {
        Op::Conv1d(c, _) => (c.kernel, c.stride, c.dilation, c.padding),
        Op::MaxPool1d(w) | Op::AvgPool1d(w, _) => (w.kernel, w.stride, 0, Padding::Valid),
        _ => (0, 0, 0, Padding::Valid),
    };
    let macs = match l.kind() {
        // The multiply-adds the kernels really do: every stored weight once per output step.
        LayerKind::Dense | LayerKind::Conv1d => out_t as u64 * stored_weights as u64,
        LayerKind::MaxPool1d | LayerKind::AvgPool1d => out_elems * kernel as u64,
        LayerKind::GlobalAvgPool => (in_t * in_c) as u64,
        _ => out_elems,
    };
    let params = match l.op {
        Op::Dense(_) | Op::Conv1d(..) => stored_weights + 2 * out_c,
        Op::Quantize { coefficients } => coefficients.len() / 4,
        Op::Lut { .. } => 256,
        Op::AvgPool1d(..) | Op::GlobalAvgPool(_) => 2,
        Op::Add { .. } => 4,
        Op::MaxPool1d(_) | Op::Flatten => 0,
    };
    LayerInfo {
        index,
        kind: l.kind(),
        input: input(l.input_a),
        input_b: input(l.input_b),
        in_shape: l.in_shape,
        out_shape: l.out_shape,
        kernel,
        stride,
        dilation,
        padding,
        out_scale: l.out.scale,
        out_zero_point: l.out.zp,
        act_min: l.out.act_min,
        act_max: l.out.act_max,
        params,
        bytes: l.section_bytes,
        weight_format: weighted.map(|w| w.weights.layout()),
        weights_total,
        weights_nonzero: weighted.map_or(0, |w| w.nonzero),
        macs,
        arena_offset: l.slots.out.start,
        arena_len: l.slots.out.len,
    }
}
