//! The deployment target and the encoder's cost model: which weight formats `auto` may pick for a layer on a
//! given machine, and how long each would take there.
//!
//! Each [`Target`] has a table of [`Costs`], in tenths of a nanosecond per unit of work of each kernel as that
//! target runs it. Only ratios within one table matter. The x86-64 tables were fitted to `benches/sparse.rs`
//! (the wide shape, dense and 90 / 95 % unstructured sparsity) with the backend pinned to the target's level;
//! the others are estimates from instruction counts (docs/BLOB.md, "Costs", says which and how).

use alloc::vec::Vec;
use core::fmt;

use super::layouts::{PackedPlan, Rows, column_bias, nm_fit};
use crate::format::WeightLayout;
use crate::format::layout::{blocked, columns, dot, dsp, nm, sparse};

/// The machine a blob is built for: it decides the dense layout and what `auto` considers faster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// x86-64 with AVX-512 VNNI (x86-64-v4 plus VNNI: Ice Lake and later Xeons, Zen 4 and later).
    X86_64V4,
    /// x86-64 with AVX2 (x86-64-v3: Haswell and later, Zen).
    X86_64V3,
    /// Baseline x86-64 (SSE2).
    X86_64,
    /// aarch64 with NEON (and the dot-product extension where present).
    Aarch64,
    /// Cortex-M4 or M7 (`thumbv7em`, DSP extension).
    CortexM4,
    /// Cortex-M0 or M0+ (`thumbv6m`): no DSP, no FPU, a 32-cycle or single-cycle multiplier.
    CortexM0,
    /// 32-bit RISC-V with the M extension (`riscv32imc`).
    Riscv32,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 7] = [
        Target::X86_64V4,
        Target::X86_64V3,
        Target::X86_64,
        Target::Aarch64,
        Target::CortexM4,
        Target::CortexM0,
        Target::Riscv32,
    ];

    /// The name used on command lines: `x86-64-v4`, `x86-64-v3`, `x86-64`, `aarch64`, `cortex-m4`, `cortex-m0`
    /// or `riscv32`.
    pub const fn name(self) -> &'static str {
        match self {
            Target::X86_64V4 => "x86-64-v4",
            Target::X86_64V3 => "x86-64-v3",
            Target::X86_64 => "x86-64",
            Target::Aarch64 => "aarch64",
            Target::CortexM4 => "cortex-m4",
            Target::CortexM0 => "cortex-m0",
            Target::Riscv32 => "riscv32",
        }
    }

    /// The machine this code runs on: on x86-64 the level whose backend this CPU has (AVX-512 VNNI, AVX2 or
    /// the baseline), otherwise the architecture this was compiled for (other architectures count as
    /// baseline x86-64: a 64-bit machine with a vectorizing compiler).
    pub fn native() -> Target {
        use crate::Backend;
        if cfg!(target_arch = "x86_64") {
            if Backend::Avx512Vnni.is_available() {
                Target::X86_64V4
            } else if Backend::Avx2.is_available() {
                Target::X86_64V3
            } else {
                Target::X86_64
            }
        } else if cfg!(target_arch = "aarch64") {
            Target::Aarch64
        } else if cfg!(tickq_dsp) {
            Target::CortexM4
        } else if cfg!(all(target_arch = "arm", target_os = "none")) {
            Target::CortexM0
        } else if cfg!(target_arch = "riscv32") {
            Target::Riscv32
        } else {
            Target::X86_64
        }
    }

    /// The dense layout this target runs fastest, for a Dense (`dense == true`) or Conv1d layer that is not
    /// dynamically quantized (dynamic layers always keep the blocked layout).
    pub const fn dense_layout(self, dense: bool) -> WeightLayout {
        match self {
            Target::X86_64V4 | Target::X86_64V3 | Target::X86_64 | Target::Aarch64 => {
                if crate::DENSE_DOT {
                    WeightLayout::DenseDot
                } else {
                    WeightLayout::Blocked
                }
            }
            Target::CortexM4 if dense => WeightLayout::DenseDsp,
            Target::CortexM4 | Target::CortexM0 | Target::Riscv32 => WeightLayout::Blocked,
        }
    }

    /// The cost table of this target.
    pub(super) const fn costs(self) -> &'static Costs {
        match self {
            Target::X86_64V4 => &X86_64_V4,
            Target::X86_64V3 => &X86_64_V3,
            Target::X86_64 => &X86_64,
            Target::Aarch64 => &AARCH64,
            Target::CortexM4 => &CORTEX_M4,
            Target::CortexM0 | Target::Riscv32 => &SCALAR_MCU,
        }
    }
}

impl Default for Target {
    /// [`Target::native`].
    fn default() -> Self {
        Target::native()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that is not one of [`Target::name`]'s was parsed as a [`Target`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseTargetError;

impl fmt::Display for ParseTargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "unknown target: use x86-64-v4, x86-64-v3, x86-64, aarch64, cortex-m4, cortex-m0 or riscv32",
        )
    }
}

impl core::error::Error for ParseTargetError {}

impl core::str::FromStr for Target {
    type Err = ParseTargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or(ParseTargetError)
    }
}

/// What one unit of each kernel's work costs on a target, in tenths of a nanosecond (or, for the
/// microcontrollers, in tenths of an instruction: only ratios within a table matter).
#[derive(Debug, Clone, Copy)]
pub(super) struct Costs {
    /// One step of a `dense-dot` block: 4 inputs times 16 channels.
    pub dot_step: u64,
    /// One step of a blocked (format 0) block: 2 inputs times 16 channels.
    pub blocked_step: u64,
    /// One word step of a `dense-dsp` group: 4 inputs times 4 channels.
    pub dsp_step: u64,
    /// One output channel of a dense layout: its requantization.
    pub dense_channel: u64,
    /// One stored sparse weight: an index load, a gather, a multiply-add.
    pub sparse_value: u64,
    /// One (channel, segment) of a sparse row: the count, the loop set-up and its mispredicted exit.
    pub sparse_segment: u64,
    /// One stored N:M weight on the 2:4 and 1:4 fast paths.
    pub nm_value: u64,
    /// One stored N:M weight on the general path (3:4).
    pub nm_value_general: u64,
    /// One stored column-sparse weight: a pair load and a scatter multiply-add (with about half of the hidden
    /// activations at zero, so a little more when none are).
    pub column_value: u64,
    /// One (row segment, input) of a column-sparse layer: the count, the zero test and the loop set-up.
    pub column: u64,
    /// One output channel of a column-sparse layer: the bias load and the requantization.
    pub column_channel: u64,
    /// One packed entry (fillers included): an unaligned 8-byte read, two masks and the scatter multiply-add.
    pub packed_entry: u64,
}

/// What every x86-64 level shares: the blocked, `dense-dsp`, by-row and N:M kernels are the same portable code
/// on every level, and the column kernels' scalar scatter too (only their requantization is vectorized). Fitted
/// to one run of `benches/sparse.rs` (the wide shape, dense and 50 to 95 % unstructured sparsity, each level's
/// backend pinned) on an AVX-512 VNNI Xeon; the `dense-dsp` step is an estimate from its instruction count.
const X86_SPARSE: Costs = Costs {
    dot_step: 91,
    blocked_step: 49,
    dsp_step: 100,
    dense_channel: 15,
    sparse_value: 9,
    sparse_segment: 80,
    nm_value: 10,
    nm_value_general: 30,
    column_value: 6,
    column: 20,
    column_channel: 15,
    packed_entry: 21,
};

/// x86-64-v4 (AVX-512 VNNI): one `vpdpbusd` (and a share of a broadcast) per step; the requantization is
/// vectorized, 16 channels at a time, in the dense and the column kernels.
const X86_64_V4: Costs = Costs {
    dot_step: 11,
    dense_channel: 3,
    column_channel: 4,
    ..X86_SPARSE
};

/// x86-64-v3 (AVX2): four sign extensions, `vpmaddwd`s and adds per step; the requantization is vectorized,
/// 8 channels at a time, in the dense and the column kernels.
const X86_64_V3: Costs = Costs {
    dot_step: 32,
    dense_channel: 5,
    column_channel: 6,
    ..X86_SPARSE
};

/// Baseline x86-64 (SSE2): `pmaddwd` on 128-bit registers, scalar requantization.
const X86_64: Costs = X86_SPARSE;

/// aarch64: an estimate (no machine to fit on): `sdot` or `smull`/`sadalp` per 16 multiply-adds, on 128-bit
/// registers, with the sparse kernels' scalar costs like x86-64's.
const AARCH64: Costs = Costs {
    dot_step: 30,
    ..X86_SPARSE
};

/// Cortex-M4, in tenths of an instruction (docs/FIRMWARE.md): `dense-dsp` is costed at 1.5 instructions per
/// multiply-add (24 per word step of a group), the per-layer target that page measures against; the assembly's
/// word step itself is 19 instructions (2 more per 8 steps for the loop), about 1.2 per multiply-add, so this
/// rounds it up. The blocked kernel takes 14 (450 per step of 32); a sparse or column entry costs a load pair,
/// an extend, a multiply-add and the loop, about 8 instructions.
const CORTEX_M4: Costs = Costs {
    dot_step: 9000,
    blocked_step: 4500,
    dsp_step: 240,
    dense_channel: 200,
    sparse_value: 80,
    sparse_segment: 150,
    nm_value: 90,
    nm_value_general: 120,
    column_value: 80,
    column: 60,
    column_channel: 200,
    packed_entry: 120,
};

/// Cortex-M0 and riscv32imc, in tenths of an instruction: every kernel is scalar, so a multiply-add costs about
/// the same in every format and the formats that store fewer weights do less work.
const SCALAR_MCU: Costs = Costs {
    dot_step: 64 * 90,
    blocked_step: 32 * 90,
    dsp_step: 16 * 90,
    dense_channel: 300,
    sparse_value: 100,
    sparse_segment: 150,
    nm_value: 110,
    nm_value_general: 140,
    column_value: 100,
    column: 60,
    column_channel: 300,
    packed_entry: 150,
};

/// The estimated size and work of one weight format for one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Estimate {
    pub layout: WeightLayout,
    pub bytes: u64,
    pub work: u64,
}

/// The size and work of a dense layout for `channels` rows of `row_len` weights.
///
/// A tail block stores only its channels, but its steps cost about as much as a full block's, so the work
/// counts whole blocks.
pub(super) fn dense_estimate(
    layout: WeightLayout,
    costs: &Costs,
    channels: usize,
    row_len: usize,
) -> Estimate {
    let (c, k) = (channels as u64, row_len as u64);
    let requant = c * costs.dense_channel;
    let (bytes, work) = match layout {
        WeightLayout::DenseDot => (
            // The second bias (4 bytes per channel) is part of what this layout costs.
            dot::weights_len(channels, row_len) + 4 * c,
            channels.div_ceil(dot::BLOCK) as u64 * k.div_ceil(4) * costs.dot_step,
        ),
        WeightLayout::DenseDsp => (
            dsp::weights_len(channels, row_len),
            c.div_ceil(4) * k.div_ceil(4) * costs.dsp_step,
        ),
        _ => (
            blocked::weights_len(channels, row_len, channels % blocked::BLOCK),
            channels.div_ceil(blocked::BLOCK) as u64 * k.div_ceil(2) * costs.blocked_step,
        ),
    };
    Estimate {
        layout,
        bytes,
        work: work + requant,
    }
}

/// The estimates of every format that fits the layer, the target's dense layout (`dense`) first.
pub(super) fn estimates(
    rows: &Rows<'_>,
    channels: usize,
    dense: WeightLayout,
    costs: &Costs,
) -> Vec<Estimate> {
    let (weights, row_len) = (rows.weights, rows.row_len);
    let (c, k) = (channels as u64, row_len as u64);
    let mut out = alloc::vec![dense_estimate(dense, costs, channels, row_len)];
    if dense != WeightLayout::Blocked {
        // The blocked layout is smaller than the others (pairs rather than groups of 4, no second bias), which
        // `smallest` wants even where it is slower.
        out.push(dense_estimate(
            WeightLayout::Blocked,
            costs,
            channels,
            row_len,
        ));
    }
    if !crate::SPARSE_FORMATS {
        // A build without `sparse-formats` could not load what the others would pick.
        return out;
    }
    let nnz = weights.iter().filter(|&&w| w != 0).count() as u64;
    let segments = sparse::segments(row_len) as u64;
    out.push(Estimate {
        layout: WeightLayout::Sparse,
        bytes: c * segments + 2 * nnz,
        work: nnz * costs.sparse_value + c * segments * costs.sparse_segment,
    });
    if column_bias(rows).is_ok() {
        let column_count = columns::row_segments(channels) as u64 * k;
        let fixed = column_count * costs.column + c * costs.column_channel;
        out.push(Estimate {
            layout: WeightLayout::Columns,
            bytes: column_count + 2 * nnz,
            work: nnz * costs.column_value + fixed,
        });
        let plan = PackedPlan::best(weights, channels, row_len);
        out.push(Estimate {
            layout: WeightLayout::Packed,
            bytes: plan.bytes(column_count),
            work: plan.entries * costs.packed_entry + fixed,
        });
    }
    if let Ok(n) = nm_fit(weights, row_len) {
        let entries = (row_len / nm::M) as u64 * u64::from(n);
        let per_value = if n <= 2 {
            costs.nm_value
        } else {
            costs.nm_value_general
        };
        out.push(Estimate {
            layout: WeightLayout::NM { n, m: nm::M as u8 },
            bytes: c * (entries + nm::index_bytes(entries as usize) as u64),
            work: c * entries * per_value,
        });
    }
    out
}

/// `auto`: the format with the least estimated work among those both smaller and estimated faster than the
/// target's dense layout (ties go to fewer bytes); the dense layout if there is none, so `auto` never picks a
/// format the cost model thinks slower than dense on that target.
pub(super) fn choose(
    rows: &Rows<'_>,
    channels: usize,
    dense: WeightLayout,
    costs: &Costs,
) -> WeightLayout {
    let all = estimates(rows, channels, dense, costs);
    let Some(&first) = all.first() else {
        return dense;
    };
    all.iter()
        .filter(|e| e.bytes < first.bytes && e.work < first.work)
        .min_by_key(|e| (e.work, e.bytes))
        .map_or(dense, |e| e.layout)
}

/// `smallest`: the fewest bytes, then the least estimated work.
pub(super) fn choose_smallest(
    rows: &Rows<'_>,
    channels: usize,
    dense: WeightLayout,
    costs: &Costs,
) -> WeightLayout {
    estimates(rows, channels, dense, costs)
        .iter()
        .min_by_key(|e| (e.bytes, e.work))
        .map_or(dense, |e| e.layout)
}
