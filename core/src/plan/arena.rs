//! The arena planner: where each layer's output tensor lives in the caller's scratch buffer.
//!
//! Every layer writes one tensor, which is live from the layer that writes it to the last layer that reads it.
//! Tensors are placed in execution order, each at the lowest 16-byte aligned offset that does not overlap any
//! tensor live at the same time (first fit).
//! A tensor read by a causal convolution gets a prefix of `dilation * (kernel - 1)` rows in front of its data,
//! which the convolution fills with the input zero point, so the convolution itself never tests bounds.
//! The arena size is the largest end offset, so it is exact: one byte less cannot hold the plan.

use heapless::Vec;

use super::{LayerPlan, Op, Span};
use crate::MAX_LAYERS;
use crate::format::Padding;

/// The alignment of every tensor allocation, relative to the start of the arena.
pub const TENSOR_ALIGN: usize = 16;

/// What the planner needs to know about one tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TensorReq {
    /// The index of the layer that writes the tensor.
    pub first_use: usize,
    /// The index of the last layer that reads it (`first_use` if none does).
    pub last_use: usize,
    /// The data bytes.
    pub size: usize,
    /// The pad bytes in front of the data.
    pub prefix: usize,
}

impl TensorReq {
    fn live_with(&self, other: &TensorReq) -> bool {
        self.first_use <= other.last_use && other.first_use <= self.last_use
    }
}

/// Places the tensors (given in execution order) and writes each allocation's start offset to `starts`.
///
/// Returns the arena size, or `None` if it overflows `usize` or `starts` is too short.
pub(crate) fn first_fit(reqs: &[TensorReq], starts: &mut [usize]) -> Option<usize> {
    let mut total = 0usize;
    for (i, req) in reqs.iter().enumerate() {
        let len = req.size.checked_add(req.prefix)?;
        // The blocks already placed that are live at the same time as this tensor, sorted by start.
        let mut busy: Vec<(usize, usize), MAX_LAYERS> = Vec::new();
        for (other, &start) in reqs.iter().zip(starts.iter()).take(i) {
            if req.live_with(other) {
                let end = start.checked_add(other.size)?.checked_add(other.prefix)?;
                busy.push((start, end)).ok()?;
            }
        }
        insertion_sort(&mut busy);
        let mut candidate = 0usize;
        for &(start, end) in &busy {
            if candidate.checked_add(len)? <= start {
                break;
            }
            candidate = candidate.max(end.checked_next_multiple_of(TENSOR_ALIGN)?);
        }
        *starts.get_mut(i)? = candidate;
        total = total.max(candidate.checked_add(len)?);
    }
    Some(total)
}

/// Places every layer's output tensor and fills in each plan's [`Slots`](super::Slots); returns the arena size,
/// or `None` if it overflows `usize`.
///
/// A tensor read by a causal convolution gets that convolution's pad in front of its data; a dynamic Dense or
/// Conv1d layer's allocation has room for its i32 values after its int8 output.
pub(crate) fn place(layers: &mut [LayerPlan<'_>]) -> Option<usize> {
    let mut reqs: Vec<TensorReq, MAX_LAYERS> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let elements = l.out_shape.0.checked_mul(l.out_shape.1)?;
        let dynamic_weighted = l.dynamic && l.op.weighted().is_some();
        reqs.push(TensorReq {
            first_use: i,
            last_use: i,
            size: elements.checked_mul(if dynamic_weighted { 5 } else { 1 })?,
            prefix: 0,
        })
        .ok()?;
    }
    for (i, l) in layers.iter().enumerate() {
        for input in [l.input_a, l.input_b] {
            if let Some(r) = reqs.get_mut(usize::from(input)) {
                r.last_use = r.last_use.max(i);
            }
        }
        let pad = causal_pad(l)?;
        if let Some(r) = reqs.get_mut(usize::from(l.input_a)) {
            r.prefix = r.prefix.max(pad);
        }
    }
    let mut starts = [0usize; MAX_LAYERS];
    let total = first_fit(&reqs, &mut starts)?;
    for (i, l) in layers.iter_mut().enumerate() {
        let r = reqs.get(i)?;
        let start = *starts.get(i)?;
        l.slots.alloc = Span {
            start,
            len: r.prefix.checked_add(r.size)?,
        };
        l.slots.out = Span {
            start: start + r.prefix,
            len: l.out_shape.0.checked_mul(l.out_shape.1)?,
        };
    }
    // A second pass resolves the input ranges now that every tensor is placed.
    for i in 0..layers.len() {
        let l = *layers.get(i)?;
        let a = layers.get(usize::from(l.input_a)).map(|p| p.slots.out);
        let b = layers.get(usize::from(l.input_b)).map(|p| p.slots.out);
        let me = layers.get_mut(i)?;
        if let Some(a) = a {
            me.slots.pad_len = causal_pad(&l)?;
            me.slots.input = Span {
                start: a.start.checked_sub(me.slots.pad_len)?,
                len: a.len + me.slots.pad_len,
            };
        }
        if let Some(b) = b {
            me.slots.input_b = b;
        }
    }
    Some(total)
}

/// The pad bytes a causal convolution needs in front of its input, `dilation * (kernel - 1) * C_in`; 0 for
/// every other layer.
fn causal_pad(l: &LayerPlan<'_>) -> Option<usize> {
    match l.op {
        Op::Conv1d(c, _) if c.padding == Padding::Causal => c
            .dilation
            .checked_mul(c.kernel.checked_sub(1)?)?
            .checked_mul(l.in_shape.1),
        _ => Some(0),
    }
}

/// Sorts the busy blocks by start (then end), in place.
///
/// There are at most [`MAX_LAYERS`] (32) of them, so O(n^2) costs nothing here, while `sort_unstable` brings
/// in the generic pattern-defeating quicksort, about 7.9 KB of `.text` on thumbv7em at `opt-level = "s"`
/// (docs/FIRMWARE.md).
fn insertion_sort(v: &mut [(usize, usize)]) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 {
            // Both indices were just read with `get`, so `swap` cannot panic.
            match (v.get(j - 1), v.get(j)) {
                (Some(a), Some(b)) if a > b => v.swap(j - 1, j),
                _ => break,
            }
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
    }

    /// Builds a random layer graph: each layer reads the previous one, and sometimes an older one as a
    /// residual second input.
    fn random_graph(rng: &mut XorShift) -> std::vec::Vec<TensorReq> {
        let n = 1 + rng.below(MAX_LAYERS as u64);
        let mut reqs: std::vec::Vec<TensorReq> = (0..n)
            .map(|i| TensorReq {
                first_use: i,
                last_use: i,
                size: 1 + rng.below(300),
                prefix: if rng.below(4) == 0 { rng.below(64) } else { 0 },
            })
            .collect();
        for i in 1..n {
            let mut inputs = vec![i - 1];
            if rng.below(3) == 0 {
                inputs.push(rng.below(i as u64));
            }
            for j in inputs {
                reqs[j].last_use = reqs[j].last_use.max(i);
            }
        }
        reqs
    }

    #[test]
    fn live_tensors_never_overlap_and_size_is_tight() {
        let mut rng = XorShift(0x5EED_1234_ABCD);
        // Fewer graphs under Miri (`.ci/run`), which interprets every step.
        for _ in 0..if cfg!(miri) { 50 } else { 5_000 } {
            let reqs = random_graph(&mut rng);
            let mut starts = [0usize; MAX_LAYERS];
            let total = first_fit(&reqs, &mut starts).unwrap();
            let mut max_end = 0;
            for (i, a) in reqs.iter().enumerate() {
                assert_eq!(starts[i] % TENSOR_ALIGN, 0);
                let a_end = starts[i] + a.prefix + a.size;
                max_end = max_end.max(a_end);
                assert!(a_end <= total);
                for (j, b) in reqs.iter().enumerate().take(i) {
                    if a.live_with(b) {
                        let b_end = starts[j] + b.prefix + b.size;
                        assert!(
                            a_end <= starts[j] || b_end <= starts[i],
                            "tensors {j} and {i} overlap: {reqs:?} {starts:?}"
                        );
                    }
                }
            }
            assert_eq!(max_end, total);
        }
    }

    #[test]
    fn insertion_sort_matches_the_standard_sort() {
        let mut rng = XorShift(0xC0FF_EE12_3456);
        for _ in 0..if cfg!(miri) { 50 } else { 2_000 } {
            let n = rng.below(MAX_LAYERS as u64 + 1);
            let mut v: std::vec::Vec<(usize, usize)> =
                (0..n).map(|_| (rng.below(50), rng.below(50))).collect();
            let mut expected = v.clone();
            expected.sort_unstable();
            insertion_sort(&mut v);
            assert_eq!(v, expected);
        }
    }

    #[test]
    fn a_chain_reuses_memory() {
        // Three 100-byte tensors in a chain: the third can reuse the first one's space.
        let reqs = [
            TensorReq {
                first_use: 0,
                last_use: 1,
                size: 100,
                prefix: 0,
            },
            TensorReq {
                first_use: 1,
                last_use: 2,
                size: 100,
                prefix: 0,
            },
            TensorReq {
                first_use: 2,
                last_use: 2,
                size: 100,
                prefix: 0,
            },
        ];
        let mut starts = [0usize; 3];
        assert_eq!(first_fit(&reqs, &mut starts), Some(212));
        assert_eq!(starts, [0, 112, 0]);
    }

    #[test]
    fn overflow_is_reported() {
        let reqs = [
            TensorReq {
                first_use: 0,
                last_use: 1,
                size: usize::MAX - 8,
                prefix: 0,
            },
            TensorReq {
                first_use: 1,
                last_use: 1,
                size: 100,
                prefix: 0,
            },
        ];
        let mut starts = [0usize; 2];
        assert_eq!(first_fit(&reqs, &mut starts), None);
    }
}
