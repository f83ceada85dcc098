//! The checks of one layer entry against the layers before it: kind, inputs, geometry, output shape and
//! quantization, then its sections (the weighted ones through `weights`), producing the layer's plan.

use heapless::Vec;

use super::weights::WeightedShape;
use crate::MAX_LAYERS;
use crate::error::{BlobError, BlobErrorKind, Section, clamp_offset};
use crate::format::shape::{Geometry, ShapeError, output_shape};
use crate::format::{
    Entry, LayerKind, NO_INPUT, Padding, SECTION_ALIGN, WeightLayout, entry, le_f32, le_i32,
};
use crate::plan::{Conv, LayerPlan, Op, OutQuant, Slots, Window};
use crate::requant::QuantMultiplier;

/// The byte range of a section already accepted, for the overlap check.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placed {
    start: usize,
    end: usize,
}

/// Whether `[start, end)` overlaps a section already placed.
pub(super) fn overlaps(placed: &[Placed], start: usize, end: usize) -> bool {
    placed.iter().any(|p| start < p.end && p.start < end)
}

/// Per-layer validation state: the entry, its location and the section bounds.
pub(super) struct LayerCheck<'b, 'e> {
    pub blob: &'b [u8],
    pub entry: Entry<'b>,
    pub index: u16,
    pub base: usize,
    pub kind: LayerKind,
    pub sections_start: usize,
    pub sections_end: usize,
    pub placed: &'e mut Vec<Placed, { MAX_LAYERS * 4 }>,
    pub version: u16,
}

impl<'b> LayerCheck<'b, '_> {
    pub(super) fn err(&self, offset: usize, kind: BlobErrorKind) -> BlobError {
        BlobError {
            layer: Some(self.index),
            layer_kind: Some(self.kind),
            offset: clamp_offset(offset),
            kind,
        }
    }

    pub(super) fn field(&self, rel: usize, kind: BlobErrorKind) -> BlobError {
        self.err(self.base + rel, kind)
    }

    /// The entry field (relative offset) holding a section's offset; its length follows 4 bytes later.
    fn section_field(section: Section) -> usize {
        match section {
            Section::Weights => entry::WEIGHTS_OFFSET.start,
            Section::Bias => entry::BIAS_OFFSET.start,
            Section::Requant => entry::REQUANT_OFFSET.start,
            Section::Aux => entry::AUX_OFFSET.start,
        }
    }

    /// The error for a section whose length is not `expected`.
    pub(super) fn length_error(&self, section: Section, expected: u64, found: u32) -> BlobError {
        self.field(
            Self::section_field(section) + 4,
            BlobErrorKind::SectionLength {
                section,
                expected: u32::try_from(expected).unwrap_or(u32::MAX),
                found,
            },
        )
    }

    /// Checks one section against the length the layer needs and returns its bytes.
    pub(super) fn section(
        &mut self,
        section: Section,
        expected: u64,
    ) -> Result<&'b [u8], BlobError> {
        let (offset, len) = self.entry.section(section);
        if u64::from(len) != expected || (expected == 0 && offset != 0) {
            return Err(self.length_error(section, expected, len));
        }
        if expected == 0 {
            return Ok(&[]);
        }
        self.place(section)
    }

    /// Checks a section's alignment, bounds and overlap, whatever its length, and returns its bytes.
    ///
    /// Sparse weights use this: their exact length depends on counts stored in the section itself, so the caller
    /// checks it afterwards.
    pub(super) fn place(&mut self, section: Section) -> Result<&'b [u8], BlobError> {
        let (offset, len) = self.entry.section(section);
        let field = Self::section_field(section);
        if len == 0 && offset == 0 {
            return Ok(&[]);
        }
        let start = offset as usize;
        if !start.is_multiple_of(SECTION_ALIGN) {
            return Err(self.field(field, BlobErrorKind::SectionMisaligned { section }));
        }
        let end = start.checked_add(len as usize);
        let bytes = match end {
            Some(end) if start >= self.sections_start && end <= self.sections_end => {
                self.blob.get(start..end)
            }
            _ => None,
        }
        .ok_or_else(|| self.field(field, BlobErrorKind::SectionOutOfBounds { section }))?;
        let end = start + bytes.len();
        if self.placed.iter().any(|p| start < p.end && p.start < end) {
            return Err(self.field(field, BlobErrorKind::SectionOverlap { section }));
        }
        self.placed
            .push(Placed { start, end })
            .map_err(|_| self.field(field, BlobErrorKind::SectionOverlap { section }))?;
        Ok(bytes)
    }
}

/// Reads and checks the weight format byte and the N:M bytes of an entry.
///
/// In version 1 all three are reserved and must be zero.
/// From version 2 on only Dense and Conv1d may set a format, and only one their version has; the N:M bytes are
/// zero unless the format is N:M, which needs `m = 4` and `1 <= n < m`.
#[inline(always)]
fn weight_layout(c: &LayerCheck<'_, '_>, kind: LayerKind) -> Result<WeightLayout, BlobError> {
    use BlobErrorKind as K;
    use entry as e;
    let code = c.entry.weight_format();
    let (n, m) = c.entry.nm();
    if c.version < 2 {
        for (at, v) in [(e::NM_N, n), (e::NM_M, m), (e::WEIGHT_FORMAT, code)] {
            if v != 0 {
                return Err(c.field(at, K::ReservedNotZero));
            }
        }
        return Ok(WeightLayout::Blocked);
    }
    let layout = match (code, kind) {
        (0, _) => WeightLayout::Blocked,
        (1, LayerKind::Dense | LayerKind::Conv1d) => WeightLayout::Sparse,
        (2, LayerKind::Dense | LayerKind::Conv1d) => WeightLayout::NM { n, m },
        (3, LayerKind::Dense) => WeightLayout::Columns,
        (4, LayerKind::Dense) => WeightLayout::Packed,
        (5, LayerKind::Dense) => WeightLayout::DenseDsp,
        (6, LayerKind::Dense | LayerKind::Conv1d) => WeightLayout::DenseDot,
        _ => return Err(c.field(e::WEIGHT_FORMAT, K::BadWeightFormat { found: code })),
    };
    if c.version < layout.min_version() {
        return Err(c.field(e::WEIGHT_FORMAT, K::BadWeightFormat { found: code }));
    }
    if !compiled(layout) {
        return Err(c.field(e::WEIGHT_FORMAT, not_compiled(layout)));
    }
    if let WeightLayout::NM { n, m } = layout {
        if usize::from(m) != crate::format::layout::nm::M {
            return Err(c.field(e::NM_M, K::BadNmPattern));
        }
        if n == 0 || n >= m {
            return Err(c.field(e::NM_N, K::BadNmPattern));
        }
    } else {
        for (at, v) in [(e::NM_N, n), (e::NM_M, m)] {
            if v != 0 {
                return Err(c.field(at, K::ReservedNotZero));
            }
        }
    }
    Ok(layout)
}

/// Whether this build has the kernels of `layout` (its Cargo feature).
const fn compiled(layout: WeightLayout) -> bool {
    match layout {
        WeightLayout::Blocked | WeightLayout::DenseDsp => true,
        WeightLayout::DenseDot => crate::DENSE_DOT,
        WeightLayout::Sparse
        | WeightLayout::NM { .. }
        | WeightLayout::Columns
        | WeightLayout::Packed => crate::SPARSE_FORMATS,
    }
}

/// The error for a blob that uses a weight format whose Cargo feature this build leaves out.
pub(super) const fn not_compiled(layout: WeightLayout) -> BlobErrorKind {
    let (what, feature) = match layout {
        WeightLayout::DenseDot => ("dense-dot weight format", "dense-dot"),
        _ => ("sparse weight format", "sparse-formats"),
    };
    BlobErrorKind::NotCompiled {
        what,
        feature,
        found: layout.code(),
    }
}

/// Checks the layer flags and the bias exponent byte; returns whether the layer is dynamic.
///
/// Either every layer is dynamic or none is; a dynamic layer has zero point 0 and is Quantize (no clamp), Dense
/// or Conv1d (dense blocked weight format, clamped with `act_min` -128 (none) or 0 (ReLU) and `act_max` 127
/// (none) or, with ReLU, a cap exponent in `[0, 126]`), or one of the layers that keep their input's exponent:
/// MaxPool1d, AvgPool1d, GlobalAvgPool and Flatten, with no clamp.
/// Only a dynamic Dense or Conv1d may set the bias exponent.
#[inline(always)]
fn check_dynamic(
    c: &LayerCheck<'_, '_>,
    kind: LayerKind,
    layout: WeightLayout,
    earlier: &[LayerPlan<'_>],
) -> Result<bool, BlobError> {
    use BlobErrorKind as K;
    use entry as e;
    let flags = c.entry.layer_flags();
    if flags & !1 != 0 {
        return Err(c.field(e::FLAGS, K::ReservedNotZero));
    }
    let dynamic = flags & 1 != 0;
    if dynamic && !crate::DYNAMIC {
        return Err(c.field(
            e::FLAGS,
            K::NotCompiled {
                what: "dynamic quantization",
                feature: "dynamic",
                found: flags,
            },
        ));
    }
    if let Some(first) = earlier.first()
        && first.dynamic != dynamic
    {
        return Err(c.field(e::FLAGS, K::BadDynamic));
    }
    let weighted = matches!(kind, LayerKind::Dense | LayerKind::Conv1d);
    if !(dynamic && weighted) && c.entry.bias_exponent() != 0 {
        return Err(c.field(e::BIAS_EXPONENT, K::ReservedNotZero));
    }
    if !dynamic {
        return Ok(false);
    }
    let (zp, lo, hi) = (
        c.entry.out_zero_point(),
        c.entry.act_min(),
        c.entry.act_max(),
    );
    let unclamped = lo == i8::MIN && hi == i8::MAX;
    let clamp_ok = match kind {
        LayerKind::Quantize
        | LayerKind::MaxPool1d
        | LayerKind::AvgPool1d
        | LayerKind::GlobalAvgPool
        | LayerKind::Flatten => unclamped,
        LayerKind::Dense | LayerKind::Conv1d => unclamped || (lo == 0 && hi >= 0),
        LayerKind::Lut | LayerKind::Add => return Err(c.field(e::FLAGS, K::BadDynamic)),
    };
    if weighted && layout != WeightLayout::Blocked {
        return Err(c.field(e::WEIGHT_FORMAT, K::BadDynamic));
    }
    if zp != 0 {
        return Err(c.field(e::OUT_ZERO_POINT, K::BadDynamic));
    }
    if !clamp_ok {
        return Err(c.field(e::ACT_MIN, K::BadDynamic));
    }
    Ok(true)
}

/// The producing layer of an input reference, if it names an earlier layer.
fn producer<'p, 'b>(
    c: &LayerCheck<'_, '_>,
    earlier: &'p [LayerPlan<'b>],
    input: u16,
    field: usize,
) -> Result<&'p LayerPlan<'b>, BlobError> {
    earlier
        .get(usize::from(input))
        .ok_or(c.field(field, BlobErrorKind::BadInput { found: input }))
}

/// Validates one layer entry against the layers before it and returns its plan (with empty arena slots, which
/// `plan::arena::place` fills once every layer is known).
pub(super) fn check_layer<'b>(
    mut c: LayerCheck<'b, '_>,
    earlier: &[LayerPlan<'b>],
) -> Result<LayerPlan<'b>, BlobError> {
    use BlobErrorKind as K;
    use entry as e;
    let entry = c.entry;
    let code = entry.kind();
    c.kind = LayerKind::from_code(code).ok_or(BlobError {
        layer: Some(c.index),
        layer_kind: None,
        offset: clamp_offset(c.base + e::KIND),
        kind: K::UnknownKind { found: code },
    })?;
    let kind = c.kind;
    if let Some(at) = entry.nonzero_reserved() {
        return Err(c.field(at, K::ReservedNotZero));
    }
    if (c.index == 0) != (kind == LayerKind::Quantize) {
        return Err(c.field(e::KIND, K::QuantizeNotFirst));
    }
    let padding = match (Padding::from_code(entry.padding()), kind) {
        (Some(p), LayerKind::Conv1d) | (Some(p @ Padding::Valid), _) => p,
        _ => {
            return Err(c.field(
                e::PADDING,
                K::BadPadding {
                    found: entry.padding(),
                },
            ));
        }
    };
    let layout = weight_layout(&c, kind)?;
    let (input_a, input_b) = (entry.input_a(), entry.input_b());
    let first = if c.index == 0 {
        if input_a != NO_INPUT {
            return Err(c.field(e::INPUT_A.start, K::BadInput { found: input_a }));
        }
        None
    } else {
        Some(producer(&c, earlier, input_a, e::INPUT_A.start)?)
    };
    let second = if kind == LayerKind::Add {
        Some(producer(&c, earlier, input_b, e::INPUT_B.start)?)
    } else {
        if input_b != NO_INPUT {
            return Err(c.field(e::INPUT_B.start, K::BadInput { found: input_b }));
        }
        None
    };

    let (kernel, stride, dilation) = (
        usize::from(entry.kernel()),
        usize::from(entry.stride()),
        usize::from(entry.dilation()),
    );
    let (uses_kernel, uses_stride, uses_dilation) = match kind {
        LayerKind::Conv1d => (true, true, true),
        LayerKind::MaxPool1d | LayerKind::AvgPool1d => (true, true, false),
        _ => (false, false, false),
    };
    for (used, value, field) in [
        (uses_kernel, kernel, e::KERNEL.start),
        (uses_stride, stride, e::STRIDE.start),
        (uses_dilation, dilation, e::DILATION.start),
    ] {
        if used && value == 0 {
            return Err(c.field(field, K::ZeroParameter));
        }
        if !used && value != 0 {
            return Err(c.field(field, K::UnusedParameter));
        }
    }
    let (out_t, out_c) = (
        usize::from(entry.out_time()),
        usize::from(entry.out_channels()),
    );
    if out_t == 0 {
        return Err(c.field(e::OUT_TIME.start, K::ZeroParameter));
    }
    if out_c == 0 {
        return Err(c.field(e::OUT_CHANNELS.start, K::ZeroParameter));
    }
    let out_scale = entry.out_scale();
    if !(out_scale.is_finite() && out_scale > 0.0) {
        return Err(c.field(e::OUT_SCALE.start, K::BadScale));
    }
    let (out_zp, act_min, act_max) = (entry.out_zero_point(), entry.act_min(), entry.act_max());
    if act_min > act_max {
        return Err(c.field(e::ACT_MIN, K::BadActivationRange));
    }
    let dynamic = check_dynamic(&c, kind, layout, earlier)?;

    let (in_t, in_c, in_zp, in_scale) = first.map_or((out_t, out_c, 0, 1.0), |p| {
        (p.out_shape.0, p.out_shape.1, p.out.zp, p.out.scale)
    });
    let geometry = Geometry {
        kind,
        padding,
        kernel,
        stride,
        dilation,
        channels: out_c,
        time: out_t,
    };
    let (t, ch) = output_shape(&geometry, (in_t, in_c)).map_err(|err| match err {
        ShapeError::NotVector => c.field(e::INPUT_A.start, K::InputNotVector),
        ShapeError::WindowTooLarge => c.field(e::KERNEL.start, K::WindowTooLarge),
        ShapeError::Zero => c.field(e::KERNEL.start, K::ZeroParameter),
    })?;
    if (t, ch) != (out_t, out_c) {
        return Err(c.field(
            e::OUT_TIME.start,
            K::ShapeMismatch {
                expected_time: u32::try_from(t).unwrap_or(u32::MAX),
                expected_channels: u32::try_from(ch).unwrap_or(u32::MAX),
            },
        ));
    }
    if let Some(b) = second
        && b.out_shape != (in_t, in_c)
    {
        return Err(c.field(e::INPUT_B.start, K::AddShapeMismatch));
    }
    if matches!(kind, LayerKind::MaxPool1d | LayerKind::Flatten)
        && (out_scale.to_bits() != in_scale.to_bits() || out_zp != in_zp)
    {
        return Err(c.field(e::OUT_ZERO_POINT, K::QuantParamsMismatch));
    }

    let row_len = match kind {
        LayerKind::Dense => in_c,
        LayerKind::Conv1d => kernel * in_c,
        _ => 0,
    };
    // Section lengths in u64 so that no product can wrap on 32-bit targets; `None` for weights whose exact
    // length depends on counts stored in the section itself, which `weighted` checks.
    let c_out = out_c as u64;
    let (weights_len, bias_len, requant_len, aux_len) = match kind {
        LayerKind::Dense | LayerKind::Conv1d => {
            let aux = if layout == WeightLayout::DenseDot {
                4 * c_out
            } else {
                0
            };
            (
                c.weights_len(layout, out_c, row_len)?,
                4 * c_out,
                5 * c_out,
                aux,
            )
        }
        LayerKind::Quantize => (Some(0), 0, 0, 8 * c_out),
        LayerKind::Lut => (Some(0), 0, 0, 256),
        LayerKind::AvgPool1d | LayerKind::GlobalAvgPool => (Some(0), 0, 5, 0),
        LayerKind::Add => (Some(0), 0, 5, 8),
        LayerKind::MaxPool1d | LayerKind::Flatten => (Some(0), 0, 0, 0),
    };
    let weights = match weights_len {
        Some(len) => c.section(Section::Weights, len)?,
        None => c.place(Section::Weights)?,
    };
    let bias = c.section(Section::Bias, bias_len)?;
    let requant = c.section(Section::Requant, requant_len)?;
    let aux = c.section(Section::Aux, aux_len)?;
    let op = if let LayerKind::Dense | LayerKind::Conv1d = kind {
        let shape = WeightedShape {
            channels: out_c,
            row_len,
            inputs: in_c,
            in_zp,
            dynamic,
            bias_exp: entry.bias_exponent(),
        };
        let weighted = c.weighted(layout, shape, [weights, bias, requant, aux])?;
        if kind == LayerKind::Dense {
            Op::Dense(weighted)
        } else {
            let conv = Conv {
                kernel,
                stride,
                dilation,
                padding,
            };
            Op::Conv1d(conv, weighted)
        }
    } else {
        let r_offset = entry.section(Section::Requant).0 as usize;
        let a_offset = entry.section(Section::Aux).0 as usize;
        let multiplier = || {
            let (m, s) = requant.split_at_checked(4).unwrap_or((requant, &[]));
            s.first()
                .and_then(|&s| QuantMultiplier::new_checked(le_i32(m), s))
                .ok_or(c.err(r_offset, K::BadMultiplier))
        };
        let window = Window { kernel, stride };
        match kind {
            LayerKind::Quantize => {
                if let Some(i) = aux.chunks_exact(4).position(|v| !le_f32(v).is_finite()) {
                    return Err(c.err(a_offset + 4 * i, K::BadCoefficient));
                }
                Op::Quantize { coefficients: aux }
            }
            LayerKind::Lut => match <&[u8; 256]>::try_from(aux) {
                Ok(table) => Op::Lut { table },
                // `section` checked the length, so this is not reached.
                Err(_) => return Err(c.length_error(Section::Aux, 256, 0)),
            },
            LayerKind::MaxPool1d => Op::MaxPool1d(window),
            LayerKind::AvgPool1d => Op::AvgPool1d(window, multiplier()?),
            LayerKind::GlobalAvgPool => Op::GlobalAvgPool(multiplier()?),
            LayerKind::Add => {
                let requant = multiplier()?;
                // Pools sum at most 65535 values of magnitude at most 255, which is below 2^31, so only Add
                // needs a bound on its weights.
                let (wa, wb) = aux.split_at_checked(4).unwrap_or((aux, &[]));
                let (wa, wb) = (le_i32(wa), le_i32(wb));
                if 255 * (u64::from(wa.unsigned_abs()) + u64::from(wb.unsigned_abs())) >= 1 << 31 {
                    return Err(c.err(a_offset, K::OverflowPossible));
                }
                Op::Add {
                    wa,
                    wb,
                    zp_b: second.map_or(0, |b| b.out.zp),
                    requant,
                }
            }
            _ => Op::Flatten,
        }
    };
    let section_bytes = [
        Section::Weights,
        Section::Bias,
        Section::Requant,
        Section::Aux,
    ]
    .iter()
    .map(|&s| entry.section(s).1 as usize)
    .sum();
    Ok(LayerPlan {
        op,
        input_a: if c.index == 0 { NO_INPUT } else { input_a },
        input_b: if kind == LayerKind::Add {
            input_b
        } else {
            NO_INPUT
        },
        in_shape: (in_t, in_c),
        out_shape: (out_t, out_c),
        out: OutQuant {
            scale: out_scale,
            zp: out_zp,
            act_min,
            act_max,
        },
        in_zp,
        dynamic,
        slots: Slots::default(),
        entry_offset: c.base,
        section_bytes,
    })
}
