//! The streaming plan: for every layer, where its output columns sit in time and in the arena.
//!
//! Times are counted in input ticks relative to the window's first column (`docs/STREAMING.md`):
//! output `j` of a column-wise layer ends at time `a + s * j`, where `s` is the product of the strides up to
//! and including the layer and `a` the time its first output ends at.
//! A column whose receptive field reaches back to time `tau` or later never sees a causal pad or an edge column
//! of an earlier layer, so it is a function of the input columns alone (*stationary*) and can be kept from one
//! tick to the next; the first `edge` outputs of a layer end before `tau` and are recomputed every tick.

use heapless::Vec;

use super::{StreamError, Unsupported};
use crate::MAX_LAYERS;
use crate::format::{LayerKind, NO_INPUT, Padding};
use crate::model::Model;
use crate::plan::{LayerPlan, Op, Weights};

/// How a layer runs in a window session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Layer 0: a ring of the last `T` quantized input columns.
    Input,
    /// A column-wise layer (Conv1d, Lut, pooling, Add): a ring of stationary columns and a buffer of edge
    /// columns.
    Stream,
    /// A layer at or after the first Flatten, GlobalAvgPool or Dense: recomputed over the whole window every
    /// tick, into a buffer of its full output.
    Head,
}

/// One layer of the streaming plan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    pub role: Role,
    /// The output shape `(T, C)`.
    pub t: usize,
    pub c: usize,
    /// Output `j` ends at window time `a + s * j`.
    pub a: usize,
    pub s: usize,
    /// The earliest time (from the first column of a window) a stationary column can end at.
    pub tau: usize,
    /// The number of leading outputs that are recomputed every tick: `ceil((tau - a) / s)`, at most `t`.
    pub edge: usize,
    /// The taps one output reads from its input and their distance in time (1 tap for Lut and Add).
    pub taps: usize,
    pub tap_step: usize,
    /// The arena offset of the ring (Input, Stream: `ring_cols * c` bytes) or of the full output (Head).
    pub buf: usize,
    /// The columns of the ring: `s * (t - 1) + 1`, one per time the layer's outputs can end at.
    pub ring_cols: usize,
    /// The arena offset of the edge columns (`edge * c` bytes).
    pub edges: usize,
    /// Output multiply-accumulates (or element operations) for one column, and for the whole window.
    pub col_macs: u64,
    pub window_macs: u64,
    /// The input channels of one tap.
    pub c_in: usize,
    /// The ring slot of the layer's first output time in the current window (`start % ring_cols`), set at the
    /// start of every tick.
    pub phase: usize,
    /// A Conv1d whose columns are sums of per-tap partial dot products (`None`: its kernel recomputes every
    /// column it needs).
    pub partials: Option<Partials>,
}

/// The arena buffers of a Conv1d computed from per-tap partial sums (`docs/STREAMING.md`).
///
/// A *lane* is one `(tap k, output channel o)` pair, lane `k * C_out + o`; a partial row holds the
/// `K * C_out` little-endian i32 dot products `W_k[o] . x` of one input column `x`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Partials {
    /// The weights as int8: for each group of 4 input channels (the last one padded with zero weights), the
    /// 4 weights of every lane, `((g * lanes) + lane) * 4 + e` for input channel `4g + e`.
    pub weights: usize,
    /// Per lane `128 * sum_c w[lane][c]` (i32), which the AVX-512 VNNI loop subtracts (it adds 128 to the
    /// inputs).
    pub corr: usize,
    /// The partial row of a causal pad column (every input the zero point).
    pub pad: usize,
    /// A ring of partial rows, one per column of the input layer's ring and in the same slots.
    pub ring: usize,
    /// Taps of this tick's edge columns that read an edge column of the input layer (computed on the spot).
    pub edge_taps: usize,
    /// Whether the input layer computes a stationary column every tick (whose partial row this layer adds).
    pub fresh: bool,
}

impl Partials {
    /// The i32 lanes of one partial row.
    pub(crate) fn lanes(n: &Node) -> usize {
        n.taps * n.c
    }
}

impl Node {
    /// The ring slot of the column `off` ticks after the layer's first output time in the current window,
    /// without a division for the offsets a window has (`off < ring_cols`).
    #[inline]
    pub(crate) fn slot(&self, off: u64) -> usize {
        let cols = self.ring_cols.max(1) as u64;
        let v = self.phase as u64 + off;
        let v = if v < cols {
            v
        } else if v < 2 * cols {
            v - cols
        } else {
            v % cols
        };
        v as usize
    }

    /// Whether the output `off` ticks after the layer's first output time is one of its edge columns.
    #[inline]
    pub(crate) fn is_edge(&self, off: u64) -> bool {
        let s = self.s.max(1) as u64;
        off < s * self.edge as u64 && off.is_multiple_of(s)
    }

    /// The columns this layer computes per tick once the window is full.
    pub(crate) fn macs_per_tick(&self) -> u64 {
        match self.role {
            Role::Input => self.c as u64,
            Role::Head => self.window_macs,
            Role::Stream => {
                let newest = u64::from(self.edge < self.t);
                match self.partials {
                    // One partial row of the input's newest column, and the taps on the input's edges.
                    Some(p) => {
                        let tap = (self.c_in * self.c) as u64;
                        u64::from(p.fresh) * self.taps as u64 * tap + p.edge_taps as u64 * tap
                    }
                    None => (self.edge as u64 + newest) * self.col_macs,
                }
            }
        }
    }
}

/// The plan of a whole model.
#[derive(Debug, Clone)]
pub(crate) struct StreamPlan {
    pub nodes: Vec<Node, MAX_LAYERS>,
    /// The end of the rings and buffers; three scratch buffers follow: the gathered first inputs (with
    /// [`SLACK`] bytes after them), the gathered second inputs of an Add, and the computed columns.
    pub main_len: usize,
    pub scratch_a: usize,
    pub scratch_b: usize,
    pub scratch_out: usize,
}

/// Zero bytes after the gathered inputs: the x86-64 `dense-dot` kernels read each row in groups of 4 inputs
/// (the weights of the padding are zero), and take a slower path for a row whose last group is short.
pub(crate) const SLACK: usize = 16;

impl StreamPlan {
    /// The arena bytes a session needs.
    pub(crate) fn arena_bytes(&self) -> Option<usize> {
        self.main_len
            .checked_add(self.scratch_a)?
            .checked_add(self.scratch_b)?
            .checked_add(self.scratch_out)
    }
}

/// The input layers of `l` (one, or two for Add).
pub(crate) fn inputs(l: &LayerPlan<'_>) -> (usize, Option<usize>) {
    let b = (l.input_b != NO_INPUT).then_some(usize::from(l.input_b));
    (usize::from(l.input_a), b)
}

/// Plans `model` for streaming, or names the first layer that cannot stream.
pub(crate) fn plan(model: &Model<'_>) -> Result<StreamPlan, StreamError> {
    let refuse = |layer: usize, kind: LayerKind, reason: Unsupported| StreamError::Unsupported {
        layer,
        kind,
        reason,
    };
    let overflow = |i: usize, l: &LayerPlan<'_>| refuse(i, l.kind(), Unsupported::TooLarge);
    let mut nodes: Vec<Node, MAX_LAYERS> = Vec::new();
    let mut cursor = 0usize;
    let (mut scratch_a, mut scratch_b, mut scratch_out) = (0usize, 0usize, 0usize);
    let infos = model.layers();
    for ((i, l), info) in model.plans().iter().enumerate().zip(infos) {
        if l.dynamic {
            return Err(refuse(i, l.kind(), Unsupported::Dynamic));
        }
        let (t, c) = l.out_shape;
        let ovf = || overflow(i, l);
        let mut node = Node {
            role: Role::Head,
            t,
            c,
            a: 0,
            s: 1,
            tau: 0,
            edge: 0,
            taps: 1,
            tap_step: 0,
            buf: 0,
            ring_cols: 0,
            edges: 0,
            col_macs: info.macs / t.max(1) as u64,
            window_macs: info.macs,
            c_in: l.in_shape.1,
            phase: 0,
            partials: None,
        };
        if i == 0 {
            if !matches!(l.op, Op::Quantize { .. }) {
                return Err(refuse(i, l.kind(), Unsupported::NoQuantizer));
            }
            node.role = Role::Input;
        } else {
            let (ia, ib) = inputs(l);
            let up = *nodes
                .get(ia)
                .ok_or_else(|| refuse(i, l.kind(), Unsupported::NoQuantizer))?;
            let up_b = match ib {
                Some(b) => Some(
                    *nodes
                        .get(b)
                        .ok_or_else(|| refuse(i, l.kind(), Unsupported::NoQuantizer))?,
                ),
                None => None,
            };
            let head_input = up.role == Role::Head || up_b.is_some_and(|b| b.role == Role::Head);
            let columnwise = !matches!(
                l.kind(),
                LayerKind::Dense | LayerKind::Flatten | LayerKind::GlobalAvgPool
            );
            if columnwise && !head_input {
                node.role = Role::Stream;
                // (taps, distance between taps in input ticks, causal, stride)
                let (taps, tap_step, causal, stride) = match l.op {
                    Op::Conv1d(conv, _) => (
                        conv.kernel,
                        conv.dilation.checked_mul(up.s).ok_or_else(ovf)?,
                        conv.padding == Padding::Causal,
                        conv.stride,
                    ),
                    Op::MaxPool1d(w) | Op::AvgPool1d(w, _) => (w.kernel, up.s, false, w.stride),
                    _ => (1, 0, false, 1),
                };
                let reach = taps
                    .saturating_sub(1)
                    .checked_mul(tap_step)
                    .ok_or_else(ovf)?;
                node.taps = taps;
                node.tap_step = tap_step;
                node.s = up.s.checked_mul(stride).ok_or_else(ovf)?;
                // A causal output ends where its last tap is; a valid one `reach` ticks after its first tap.
                node.a = if causal {
                    up.a
                } else {
                    up.a.checked_add(reach).ok_or_else(ovf)?
                };
                node.tau = up.tau.checked_add(reach).ok_or_else(ovf)?;
                if let Some(b) = up_b {
                    if b.a != up.a || b.s != up.s {
                        return Err(refuse(i, l.kind(), Unsupported::MisalignedAdd));
                    }
                    node.tau = node.tau.max(b.tau);
                }
            }
        }
        match node.role {
            Role::Input | Role::Stream => {
                node.edge = node
                    .tau
                    .saturating_sub(node.a)
                    .div_ceil(node.s.max(1))
                    .min(t);
                node.ring_cols = node
                    .s
                    .checked_mul(t.saturating_sub(1))
                    .and_then(|v| v.checked_add(1))
                    .ok_or_else(ovf)?;
                // The latest time an output ends at, `a + s * (t - 1)`, and the earliest edge-free one must fit.
                node.a.checked_add(node.ring_cols).ok_or_else(ovf)?;
                node.tau.checked_add(node.ring_cols).ok_or_else(ovf)?;
                node.buf = cursor;
                cursor =
                    bump(cursor, node.ring_cols.checked_mul(c).ok_or_else(ovf)?).ok_or_else(ovf)?;
                node.edges = cursor;
                cursor = bump(cursor, node.edge.checked_mul(c).ok_or_else(ovf)?).ok_or_else(ovf)?;
                if node.role == Role::Stream
                    && let Op::Conv1d(_, ref w) = l.op
                    && summable(&w.weights)
                {
                    let up = *nodes.get(inputs(l).0).ok_or_else(ovf)?;
                    let lanes = node.taps.checked_mul(c).ok_or_else(ovf)?;
                    let row = lanes.checked_mul(4).ok_or_else(ovf)?;
                    let weights = cursor;
                    let w_len = row.checked_mul(node.c_in.div_ceil(4)).ok_or_else(ovf)?;
                    cursor = bump(cursor, w_len).ok_or_else(ovf)?;
                    let corr = cursor;
                    cursor = bump(cursor, row).ok_or_else(ovf)?;
                    let pad = cursor;
                    cursor = bump(cursor, row).ok_or_else(ovf)?;
                    let ring = cursor;
                    let ring_len = up.ring_cols.checked_mul(row).ok_or_else(ovf)?;
                    cursor = bump(cursor, ring_len).ok_or_else(ovf)?;
                    let edge_taps = (0..node.edge)
                        .map(|j| {
                            let r = node.a + node.s * j;
                            (0..node.taps)
                                .filter(|&k| {
                                    let back = (node.taps - 1 - k) * node.tap_step;
                                    r.checked_sub(back)
                                        .and_then(|t| t.checked_sub(up.a))
                                        .is_some_and(|off| {
                                            off % up.s.max(1) == 0 && off / up.s.max(1) < up.edge
                                        })
                                })
                                .count()
                        })
                        .sum();
                    node.partials = Some(Partials {
                        weights,
                        corr,
                        pad,
                        ring,
                        edge_taps,
                        fresh: up.edge < up.t,
                    });
                }
                // One kernel call computes a batch of up to `edge + 1` columns.
                let batch = node.edge + 1;
                let (_, c_in) = l.in_shape;
                let a_len = batch
                    .checked_mul(node.taps)
                    .and_then(|v| v.checked_mul(c_in))
                    .and_then(|v| v.checked_add(SLACK))
                    .ok_or_else(ovf)?;
                let out_len = batch.checked_mul(c).ok_or_else(ovf)?;
                scratch_a = scratch_a.max(a_len);
                scratch_out = scratch_out.max(out_len);
                if matches!(l.op, Op::Add { .. }) {
                    scratch_b = scratch_b.max(out_len);
                }
            }
            Role::Head => {
                node.buf = cursor;
                cursor = bump(cursor, t.checked_mul(c).ok_or_else(ovf)?).ok_or_else(ovf)?;
                let (in_t, in_c) = l.in_shape;
                let data = in_t.checked_mul(in_c).ok_or_else(ovf)?;
                let a_len = data
                    .checked_add(l.slots.pad_len)
                    .and_then(|v| v.checked_add(SLACK))
                    .ok_or_else(ovf)?;
                scratch_a = scratch_a.max(a_len);
                if matches!(l.op, Op::Add { .. }) {
                    scratch_b = scratch_b.max(data);
                }
            }
        }
        nodes.push(node).map_err(|_| ovf())?;
    }
    Ok(StreamPlan {
        nodes,
        main_len: cursor,
        scratch_a,
        scratch_b,
        scratch_out,
    })
}

/// Whether the columns of a Conv1d with these weights can be summed from per-tap partials: a dense format,
/// whose kernels compute `bias + sum w * x` over the signed inputs with the plain bias, and whose weights the
/// session can read one by one ([`weight`](super::window)).
fn summable(w: &Weights<'_>) -> bool {
    match w {
        Weights::Blocked { .. } => true,
        #[cfg(feature = "dense-dot")]
        Weights::Dot { .. } => true,
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// The offset after a buffer of `len` bytes at `at`, rounded up to the tensor alignment.
fn bump(at: usize, len: usize) -> Option<usize> {
    at.checked_add(len)?
        .checked_next_multiple_of(crate::TENSOR_ALIGN)
}
