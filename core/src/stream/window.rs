//! [`WindowSession`]: a windowed model run one input column at a time.

use super::StreamError;
use super::plan::{Node, Partials, Role, SLACK, StreamPlan, inputs, plan};
use crate::MAX_CLASSES;
use crate::error::ArenaTooSmall;
use crate::format::Padding;
use crate::format::layout::blocked as blocked_layout;
#[cfg(feature = "dense-dot")]
use crate::format::layout::dot as dot_layout;
use crate::kernels::{self, Engine, generic};
use crate::model::Model;
use crate::plan::{Conv, LayerPlan, Op, Weighted, Weights, Window};
use crate::session::Prediction;

/// A windowed model (input `[T, F]`, time-major) fed one column of `F` features per tick, which computes only
/// what the new column changes and predicts exactly what [`Session::run`](crate::Session::run) predicts on the
/// last `T` columns.
///
/// Every column-wise layer (Conv1d, Lut, MaxPool1d, AvgPool1d, Add) keeps a ring of its past output columns in
/// the arena and computes one new column per tick, plus the few columns at the window's start that a causal pad
/// reaches (recomputed every tick, since they depend on where the window starts); the head (the first Flatten,
/// GlobalAvgPool or Dense and every layer after it) is recomputed over the window every tick.
/// `docs/STREAMING.md` explains the bookkeeping and why the result is bit for bit
/// [`Session::run`](crate::Session::run)'s.
///
/// [`WindowSession::new`] checks everything; [`WindowSession::push`] cannot fail, panic or allocate.
#[derive(Debug)]
pub struct WindowSession<'m, 'b, 'a> {
    model: &'m Model<'b>,
    plan: StreamPlan,
    arena: &'a mut [u8],
    /// The columns pushed since the start or the last [`WindowSession::reset`].
    pushed: u64,
    logits: [i8; MAX_CLASSES],
}

impl<'m, 'b, 'a> WindowSession<'m, 'b, 'a> {
    /// The arena bytes [`WindowSession::new`] needs for `model`.
    ///
    /// # Errors
    ///
    /// [`StreamError::Unsupported`] naming the first layer that cannot stream.
    pub fn arena_bytes(model: &Model<'_>) -> Result<usize, StreamError> {
        planned(model).map(|(_, bytes)| bytes)
    }

    /// Binds `model` to `arena` (at least [`WindowSession::arena_bytes`] bytes; no alignment or initialization
    /// needed) for streaming.
    ///
    /// # Errors
    ///
    /// [`StreamError::Unsupported`] naming the first layer that cannot stream (a dynamically quantized model,
    /// an Add whose inputs are not aligned in time), or [`StreamError::ArenaTooSmall`].
    pub fn new(model: &'m Model<'b>, arena: &'a mut [u8]) -> Result<Self, StreamError> {
        let (plan, needed) = planned(model)?;
        if arena.len() < needed {
            return Err(StreamError::ArenaTooSmall(ArenaTooSmall {
                needed,
                given: arena.len(),
            }));
        }
        let mut session = WindowSession {
            model,
            plan,
            arena,
            pushed: 0,
            logits: [0; MAX_CLASSES],
        };
        session.prepare();
        Ok(session)
    }

    /// Writes the constant buffers of every Conv1d summed from partials: its weights as int8 quads of lanes,
    /// each lane's `128 * sum w` and the partial row of a pad column (every input the zero point).
    fn prepare(&mut self) {
        let version = self.model.version();
        for (l, n) in self.model.plans().iter().zip(&self.plan.nodes) {
            let (Some(p), Op::Conv1d(_, ref w)) = (n.partials, l.op) else {
                continue;
            };
            let lanes = Partials::lanes(n);
            let c = n.c.max(1);
            let groups = n.c_in.div_ceil(4);
            let zp = i32::from(l.in_zp);
            for lane in 0..lanes {
                let (k, o) = (lane / c, lane % c);
                let mut sum = 0i32;
                for ch in 0..groups * 4 {
                    let v = if ch < n.c_in {
                        weight(w, version, n.c, (o, k * n.c_in + ch))
                    } else {
                        0
                    };
                    sum = sum.wrapping_add(i32::from(v));
                    let at = p.weights + 4 * ((ch / 4) * lanes + lane) + ch % 4;
                    if let Some(d) = self.arena.get_mut(at) {
                        *d = v as u8;
                    }
                }
                for (buf, value) in [
                    (p.corr, sum.wrapping_mul(128)),
                    (p.pad, sum.wrapping_mul(zp)),
                ] {
                    if let Some(d) = self.arena.get_mut(buf + 4 * lane..buf + 4 * lane + 4) {
                        copy(d, &value.to_le_bytes());
                    }
                }
            }
        }
    }

    /// The model this session runs.
    #[inline]
    pub fn model(&self) -> &'m Model<'b> {
        self.model
    }

    /// Forgets every pushed column: the next prediction comes after `T` more pushes.
    pub fn reset(&mut self) {
        self.pushed = 0;
    }

    /// The columns pushed since the start or the last [`WindowSession::reset`].
    #[inline]
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// The multiply-accumulates (or element operations, as [`LayerInfo::macs`](crate::LayerInfo::macs) counts
    /// them) one push does once the window is full.
    ///
    /// A Conv1d summed from per-tap partials (dense weight formats, `docs/STREAMING.md`) counts the partial row of
    /// its input's new column and the taps it computes on its input's edge columns; the additions of kept
    /// partial rows are not multiply-accumulates and are not counted.
    pub fn macs_per_tick(&self) -> u64 {
        self.plan.nodes.iter().map(Node::macs_per_tick).sum()
    }

    /// The multiply-accumulates one [`Session::run`](crate::Session::run) of the whole window does: the sum of
    /// [`LayerInfo::macs`](crate::LayerInfo::macs).
    pub fn window_macs(&self) -> u64 {
        self.plan.nodes.iter().map(|n| n.window_macs).sum()
    }

    /// Quantizes one column of `F` features with the input quantizer (the coefficients of feature `f` are the
    /// same at every time step) and advances the window; returns the prediction for the last `T` columns, or
    /// `None` while fewer than `T` columns have been pushed.
    ///
    /// Missing values (a shorter column) and NaN are the training mean, as in [`Session::run`](crate::Session::run);
    /// extra values are ignored.
    pub fn push(&mut self, features: &[f32]) -> Option<Prediction<'_>> {
        let engine = self.model.engine();
        if let (Some(first), Some(input)) = (self.model.plans().first(), self.plan.nodes.first())
            && let Op::Quantize { coefficients } = first.op
        {
            let at = input.buf + column_slot(input, self.pushed) * input.c;
            if let Some(out) = self.arena.get_mut(at..at + input.c) {
                kernels::quantize(engine, &first.out, coefficients, features, out);
            }
        }
        self.advance()
    }

    /// Advances the window by one already quantized column of `F` int8 values (missing values are the input zero
    /// point, extra values are ignored); see [`WindowSession::push`].
    pub fn push_quantized(&mut self, column: &[i8]) -> Option<Prediction<'_>> {
        if let (Some(first), Some(input)) = (self.model.plans().first(), self.plan.nodes.first()) {
            let at = input.buf + column_slot(input, self.pushed) * input.c;
            if let Some(out) = self.arena.get_mut(at..at + input.c) {
                generic::quantize::copy_input(first.out.zp, column, out);
            }
        }
        self.advance()
    }

    fn advance(&mut self) -> Option<Prediction<'_>> {
        self.pushed = self.pushed.saturating_add(1);
        let time_steps = self.plan.nodes.first().map_or(1, |n| n.t) as u64;
        let start = self.pushed.checked_sub(time_steps)?;
        for n in &mut self.plan.nodes {
            n.phase = (start % n.ring_cols.max(1) as u64) as usize;
        }
        let ctx = Ctx {
            plans: self.model.plans(),
            plan: &self.plan,
            engine: self.model.engine(),
        };
        let warm_up = start == 0;
        for (i, n) in self.plan.nodes.iter().enumerate() {
            match n.role {
                Role::Input => {}
                Role::Stream => ctx.stream_layer(self.arena, i, warm_up),
                Role::Head => ctx.head(self.arena, i),
            }
        }
        let classes = self.model.classes();
        if let Some(last) = self.plan.nodes.last() {
            let at = match last.role {
                Role::Head => Some(last.buf),
                _ => source(last, last.a as i64, true),
            };
            let out = at
                .and_then(|at| self.arena.get(at..at + classes))
                .unwrap_or(&[]);
            for (dst, &src) in self.logits.iter_mut().zip(out) {
                *dst = src as i8;
            }
        }
        let (scale, zero_point) = self.model.output_quant();
        Some(Prediction::new(
            self.logits.get(..classes).unwrap_or(&[]),
            scale,
            zero_point,
        ))
    }
}

/// The plan of `model` and the arena bytes it needs.
fn planned(model: &Model<'_>) -> Result<(StreamPlan, usize), StreamError> {
    let p = plan(model)?;
    let last = p.nodes.len().saturating_sub(1);
    let bytes = p
        .arena_bytes()
        .ok_or_else(|| StreamError::too_large(model, last))?;
    Ok((p, bytes))
}

/// The ring slot of the column `offset` ticks after the time of the layer's first ring column in window 0.
#[inline]
fn column_slot(n: &Node, offset: u64) -> usize {
    (offset % n.ring_cols.max(1) as u64) as usize
}

/// Where the column of layer `n` ending at window time `r` is in the current window (the ring slots of which
/// `advance` set, [`Node::slot`]); `None` for a causal pad (before the layer's first output).
///
/// `window`: read the column as this window sees it, which for the layer's edge outputs is the edge buffer;
/// otherwise the stationary column of the ring.
#[inline]
fn source(n: &Node, r: i64, window: bool) -> Option<usize> {
    let off = u64::try_from(r - n.a as i64).ok()?;
    if window && n.is_edge(off) {
        return Some(n.edges + (off / n.s.max(1) as u64) as usize * n.c);
    }
    Some(n.buf + n.slot(off) * n.c)
}

/// Copies what fits of `src` into `dst`.
#[inline]
fn copy(dst: &mut [u8], src: &[u8]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s;
    }
}

/// The lanes (or output channels) one pass of the partial-sum loops accumulates at once.
const LANES: usize = 128;

/// The output channels one pass of a summed column accumulates at once.
const CHANNELS: usize = 64;

/// Weight `i` (tap-major, `k * C_in + c`) of output channel `o` of a Conv1d with `channels` outputs, in a
/// format [`Partials`] accepts (0 for any other).
fn weight(w: &Weighted<'_>, version: u16, channels: usize, (o, i): (usize, usize)) -> i8 {
    let at = match w.weights {
        Weights::Blocked { bytes, block_len } => {
            let b = blocked_layout::BLOCK;
            let tail = blocked_layout::tail_channels(channels, version);
            let width = if tail != 0 && o / b == channels / b {
                tail
            } else {
                b
            };
            let at = (o / b) * block_len + (i / 2) * 2 * width + (o % b) * 2 + i % 2;
            bytes.get(at)
        }
        #[cfg(feature = "dense-dot")]
        Weights::Dot { bytes, .. } => bytes.get(dot_layout::index(o, i, w.row_len, channels)),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    at.map_or(0, |&v| v as i8)
}

/// The weight quads of a Conv1d summed from partials, the number of its lanes and their `128 * sum w`.
type Lanes<'w> = (&'w [u8], usize, &'w [u8]);

/// `acc[j] += sum_c w[from + j][c] * x[c]`, the dot products of lanes `from..from + acc.len()` with the input
/// column `x` (`C_in` values): the engine's kernel, or else the portable loop.
///
/// Plain wrapping i32 multiply-adds, the same exact sums the layer's kernels form in another order.
#[inline]
fn mac(engine: Engine, w: Lanes<'_>, from: usize, x: &[u8], acc: &mut [i32]) {
    if kernels::lanes_dot(engine, w, from, x, acc) {
        return;
    }
    let (weights, lanes, _) = w;
    for (g, xq) in x.chunks(4).enumerate() {
        let mut xs = [0i32; 4];
        for (d, &v) in xs.iter_mut().zip(xq) {
            *d = i32::from(v as i8);
        }
        let row = weights.get(4 * (g * lanes + from)..).unwrap_or(&[]);
        let (quads, _) = row.as_chunks::<4>();
        for (a, q) in acc.iter_mut().zip(quads) {
            let [w0, w1, w2, w3] = q.map(|v| i32::from(v as i8));
            let dot = w0 * xs[0] + w1 * xs[1] + w2 * xs[2] + w3 * xs[3];
            *a = a.wrapping_add(dot);
        }
    }
}

/// Writes into `dst` the partial row (`lanes` little-endian i32) of input column `x`.
fn partial_row(engine: Engine, w: Lanes<'_>, x: &[u8], dst: &mut [u8]) {
    let (dst, _) = dst.as_chunks_mut::<4>();
    let lanes = w.1;
    let mut from = 0;
    while from < lanes {
        let n = (lanes - from).min(LANES);
        let mut acc = [0i32; LANES];
        let acc = acc.get_mut(..n).unwrap_or(&mut []);
        mac(engine, w, from, x, acc);
        for (d, a) in dst.iter_mut().skip(from).zip(acc.iter()) {
            *d = a.to_le_bytes();
        }
        from += n;
    }
}

/// The weight quads and corrections of a Conv1d summed from partials, in `arena`.
fn lanes_of<'w>(arena: &'w [u8], p: &Partials, lanes: usize, c_in: usize) -> Lanes<'w> {
    let w_len = 4 * lanes * c_in.div_ceil(4);
    (
        arena.get(p.weights..p.weights + w_len).unwrap_or(&[]),
        lanes,
        arena.get(p.corr..p.corr + 4 * lanes).unwrap_or(&[]),
    )
}

/// `acc[j] += src[j]` over little-endian i32 values.
#[inline]
fn add_row(acc: &mut [i32], src: &[u8]) {
    // Whole groups of 16 lanes first, a fixed-length loop the compiler turns into vector adds.
    let (acc16, acc_tail) = acc.as_chunks_mut::<16>();
    let (src64, _) = src.as_chunks::<64>();
    for (a, s) in acc16.iter_mut().zip(src64) {
        let (s, _) = s.as_chunks::<4>();
        for (a, s) in a.iter_mut().zip(s) {
            *a = a.wrapping_add(i32::from_le_bytes(*s));
        }
    }
    let done = 16 * acc16.len();
    let (src, _) = src.get(4 * done..).unwrap_or(&[]).as_chunks::<4>();
    for (a, s) in acc_tail.iter_mut().zip(src) {
        *a = a.wrapping_add(i32::from_le_bytes(*s));
    }
}

/// What every column computation of one tick shares.
struct Ctx<'p, 'b> {
    plans: &'p [LayerPlan<'b>],
    plan: &'p StreamPlan,
    engine: Engine,
}

impl Ctx<'_, '_> {
    /// Copies the `taps` columns of layer `up` that an output ending at `r` reads into `dst` (taps
    /// `tap_step` ticks apart, the last one at `r`; causal pads become `pad`).
    fn gather(
        &self,
        arena: &[u8],
        up: &Node,
        (taps, tap_step, r): (usize, usize, usize),
        window: bool,
        pad: i8,
        dst: &mut [u8],
    ) {
        for (tap, d) in dst.chunks_exact_mut(up.c.max(1)).take(taps).enumerate() {
            let t = r as i64 - ((taps - 1 - tap) * tap_step) as i64;
            match source(up, t, window).and_then(|at| arena.get(at..at + up.c)) {
                Some(src) => copy(d, src),
                None => d.fill(pad as u8),
            }
        }
    }

    /// Computes this tick's columns of column-wise layer `i`: the newest stationary column (or, in the first
    /// window, every stationary column of the ring, at every stride phase, since the next windows read the
    /// phases this one does not), then the edge columns as this window sees them.
    fn stream_layer(&self, arena: &mut [u8], i: usize, warm_up: bool) {
        let Some(n) = self.plan.nodes.get(i) else {
            return;
        };
        if let Some(p) = n.partials {
            self.add_partials(arena, i, p, warm_up);
        }
        let newest = n.a + n.s * n.t.saturating_sub(1);
        let stationary = if warm_up {
            (newest + 1).saturating_sub(n.a.max(n.tau))
        } else {
            usize::from(n.edge < n.t)
        };
        let first = newest + 1 - stationary;
        // Column `q` of the tick: (its window time, whether as the window sees it, where it goes).
        let column = |q: usize| {
            if q < stationary {
                let r = first + q;
                let slot = n.slot((r - n.a) as u64);
                (r, false, n.buf + slot * n.c)
            } else {
                let j = q - stationary;
                (n.a + n.s * j, true, n.edges + j * n.c)
            }
        };
        let total = stationary + n.edge;
        if let Some(p) = n.partials {
            for q in 0..total {
                self.summed_column(arena, i, &p, column(q));
            }
            return;
        }
        let mut done = 0;
        while done < total {
            let m = (total - done).min(n.edge + 1);
            self.batch(arena, i, (done, m), &column);
            done += m;
        }
    }

    /// Computes the partial rows of the input columns of Conv1d `i` that its input layer computed this tick
    /// (the newest stationary one, or in the first window every stationary one).
    fn add_partials(&self, arena: &mut [u8], i: usize, p: Partials, warm_up: bool) {
        let (Some(l), Some(n)) = (self.plans.get(i), self.plan.nodes.get(i)) else {
            return;
        };
        let Some(up) = self.plan.nodes.get(inputs(l).0) else {
            return;
        };
        let newest = up.a + up.s * up.t.saturating_sub(1);
        let count = if warm_up {
            (newest + 1).saturating_sub(up.a.max(up.tau))
        } else {
            usize::from(up.edge < up.t)
        };
        let lanes = Partials::lanes(n);
        let row = 4 * lanes;
        let (head, ring) = arena.split_at_mut(p.ring.min(arena.len()));
        let w = lanes_of(head, &p, lanes, n.c_in);
        for r in newest + 1 - count..=newest {
            let slot = up.slot((r - up.a) as u64);
            let at = up.buf + slot * up.c;
            let x = head.get(at..at + up.c.min(n.c_in)).unwrap_or(&[]);
            if let Some(dst) = ring.get_mut(slot * row..slot * row + row) {
                partial_row(self.engine, w, x, dst);
            }
        }
    }

    /// Computes one column of Conv1d `i` (ending at window time `r`, as the window sees it if `window`, stored
    /// at `at`) as its bias plus, per tap, the partial row of its input column: the pad row on a causal pad, a
    /// dot product computed here on an edge column of the input layer, and otherwise the kept row of the
    /// stationary input column; then the kernels' requantization.
    fn summed_column(&self, arena: &mut [u8], i: usize, p: &Partials, col: (usize, bool, usize)) {
        let (r, window, at) = col;
        let (Some(l), Some(n)) = (self.plans.get(i), self.plan.nodes.get(i)) else {
            return;
        };
        let (Op::Conv1d(_, ref w), Some(up)) = (l.op, self.plan.nodes.get(inputs(l).0)) else {
            return;
        };
        let ch = &w.channels;
        let lanes = Partials::lanes(n);
        let row = 4 * lanes;
        let s = up.s.max(1);
        let mut o = 0;
        while o < n.c {
            let m = (n.c - o).min(CHANNELS);
            let mut acc = [0i32; CHANNELS];
            let acc = acc.get_mut(..m).unwrap_or(&mut []);
            add_row(acc, ch.bias.get(4 * o..).unwrap_or(&[]));
            for k in 0..n.taps {
                let lane = k * n.c + o;
                let t = r as i64 - ((n.taps - 1 - k) * n.tap_step) as i64;
                match u64::try_from(t - up.a as i64) {
                    Err(_) => add_row(acc, arena.get(p.pad + 4 * lane..).unwrap_or(&[])),
                    Ok(off) if window && up.is_edge(off) => {
                        let x_at = up.edges + (off / s as u64) as usize * up.c;
                        let x = arena.get(x_at..x_at + up.c.min(n.c_in)).unwrap_or(&[]);
                        mac(self.engine, lanes_of(arena, p, lanes, n.c_in), lane, x, acc);
                    }
                    Ok(off) => {
                        let slot = up.slot(off);
                        let src = arena.get(p.ring + slot * row + 4 * lane..).unwrap_or(&[]);
                        add_row(acc, src);
                    }
                }
            }
            let mut bytes = [0u8; LANES];
            kernels::requant_lanes(self.engine, &l.out, ch, o, acc, &mut bytes);
            copy(arena.get_mut(at + o..at + o + m).unwrap_or(&mut []), &bytes);
            o += m;
        }
    }

    /// Computes columns `from..from + m` of this tick of column-wise layer `i` (see
    /// [`Ctx::stream_layer`]) and stores each where `column` says.
    ///
    /// The taps of each column are copied side by side into the scratch buffer, so that one call of the
    /// layer's full-window kernel, with a geometry whose stride is a whole column of taps (the taps
    /// contiguous, dilation 1), computes the whole batch: every weight format and backend the session has then
    /// streams too, with the same bytes, and the SIMD kernels tile the batch as they tile a window.
    fn batch(
        &self,
        arena: &mut [u8],
        i: usize,
        (from, m): (usize, usize),
        column: &dyn Fn(usize) -> (usize, bool, usize),
    ) {
        let (Some(l), Some(n)) = (self.plans.get(i), self.plan.nodes.get(i)) else {
            return;
        };
        let (ia, ib) = inputs(l);
        let Some(up) = self.plan.nodes.get(ia) else {
            return;
        };
        let (main, scratch) = arena.split_at_mut(self.plan.main_len.min(arena.len()));
        let (sa, rest) = scratch.split_at_mut(self.plan.scratch_a.min(scratch.len()));
        let (sb, so) = rest.split_at_mut(self.plan.scratch_b.min(rest.len()));
        let row = n.taps * up.c;
        let Some(x) = sa.get_mut(..m * row + SLACK) else {
            return;
        };
        let (rows, slack) = x.split_at_mut(m * row);
        slack.fill(0);
        for (q, dst) in rows.chunks_exact_mut(row.max(1)).enumerate() {
            let (r, window, _) = column(from + q);
            self.gather(main, up, (n.taps, n.tap_step, r), window, l.in_zp, dst);
        }
        let Some(out) = so.get_mut(..m * n.c) else {
            return;
        };
        if let Op::Add {
            wa,
            wb,
            zp_b,
            requant,
        } = l.op
        {
            let (Some(b), Some(y)) = (
                ib.and_then(|b| self.plan.nodes.get(b)),
                sb.get_mut(..m * n.c),
            ) else {
                return;
            };
            for (q, dst) in y.chunks_exact_mut(b.c.max(1)).enumerate() {
                let (r, window, _) = column(from + q);
                self.gather(main, b, (1, 0, r), window, zp_b, dst);
            }
            let p = generic::pool::AddParams {
                za: l.in_zp,
                zb: zp_b,
                wa,
                wb,
                requant,
            };
            generic::pool::add(&l.out, &p, rows, y, out);
        } else {
            let mut col = *l;
            col.in_shape = (m * n.taps, up.c);
            col.out_shape = (m, n.c);
            let one_step = Window {
                kernel: n.taps,
                stride: n.taps,
            };
            col.op = match l.op {
                Op::Conv1d(_, w) => Op::Conv1d(
                    Conv {
                        kernel: n.taps,
                        stride: n.taps,
                        dilation: 1,
                        padding: Padding::Valid,
                    },
                    w,
                ),
                Op::MaxPool1d(_) => Op::MaxPool1d(one_step),
                Op::AvgPool1d(_, m) => Op::AvgPool1d(one_step, m),
                op => op,
            };
            kernels::layer(self.engine, &col, x, out);
        }
        for (q, src) in out.chunks_exact(n.c.max(1)).enumerate() {
            let (_, _, at) = column(from + q);
            copy(main.get_mut(at..at + n.c).unwrap_or(&mut []), src);
        }
    }

    /// Copies the whole window's output of layer `up` into `dst`, as this window sees it.
    fn gather_all(&self, arena: &[u8], up: &Node, dst: &mut [u8]) {
        if up.role == Role::Head {
            copy(dst, arena.get(up.buf..up.buf + up.t * up.c).unwrap_or(&[]));
            return;
        }
        for (j, d) in dst.chunks_exact_mut(up.c.max(1)).take(up.t).enumerate() {
            if let Some(src) =
                source(up, (up.a + up.s * j) as i64, true).and_then(|at| arena.get(at..at + up.c))
            {
                copy(d, src);
            }
        }
    }

    /// Runs head layer `i` over the whole window, as [`Session::run`](crate::Session::run) does.
    fn head(&self, arena: &mut [u8], i: usize) {
        let (Some(l), Some(n)) = (self.plans.get(i), self.plan.nodes.get(i)) else {
            return;
        };
        let (ia, ib) = inputs(l);
        let Some(up) = self.plan.nodes.get(ia) else {
            return;
        };
        let (main, scratch) = arena.split_at_mut(self.plan.main_len.min(arena.len()));
        let (sa, sb) = scratch.split_at_mut(self.plan.scratch_a.min(scratch.len()));
        let pad = l.slots.pad_len;
        let len = pad + up.t * up.c;
        let Some(x) = sa.get_mut(..len + SLACK) else {
            return;
        };
        // A causal conv in the head reads its pad in front of the input, as in the session's arena.
        let (pad_rows, data) = x.split_at_mut(pad.min(x.len()));
        pad_rows.fill(l.in_zp as u8);
        let (data, slack) = data.split_at_mut(up.t * up.c);
        slack.fill(0);
        self.gather_all(main, up, data);
        // Only the weighted kernels are given the slack (they read rows in groups of 4); the others see the
        // input's exact length, as in the session.
        let x = if matches!(l.op, Op::Dense(_) | Op::Conv1d(..)) {
            x
        } else {
            x.get_mut(..len).unwrap_or(&mut [])
        };
        let b = ib.and_then(|b| self.plan.nodes.get(b));
        if let Some(b) = b
            && let Some(y) = sb.get_mut(..b.t * b.c)
        {
            self.gather_all(main, b, y);
        }
        let Some(out) = main.get_mut(n.buf..n.buf + n.t * n.c) else {
            return;
        };
        if let Op::Add {
            wa,
            wb,
            zp_b,
            requant,
        } = l.op
        {
            let p = generic::pool::AddParams {
                za: l.in_zp,
                zb: zp_b,
                wa,
                wb,
                requant,
            };
            let y = b.and_then(|b| sb.get(..b.t * b.c)).unwrap_or(&[]);
            generic::pool::add(&l.out, &p, x, y, out);
        } else {
            kernels::layer(self.engine, l, x, out);
        }
    }
}
