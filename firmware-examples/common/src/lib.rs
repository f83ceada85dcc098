//! Shared code of the tickq firmware examples: the test vector reader, the run loop and its line format,
//! and stack painting.
//!
//! Each example embeds a blob (`tickq export --format rust`) and a test vector file (`tickq export --vectors N`,
//! format `TQV1`, see `host/src/export.rs`), runs every vector through tickq-core, and prints one line per
//! vector over semihosting:
//!
//! ```text
//! tickq-fw target=cortex-m4 blob_len=25557 blob_crc=3e93844d arena=288 model_struct=... vectors=300 input=int8
//! vec 0 signal 2 logits -5,3,12 ok ticks=1234
//! summary vectors=300 mismatches=0 ticks_min=... ticks_max=... stack_peak=...
//! ```
//!
//! `ticks` appear only where the example has a cycle timer.
//!
//! With the `stream` feature, [`trades`] runs raw trades through a blob's feature spec and model instead
//! (`tickq export --trade-vectors N`, format `TQT1`).
#![no_std]
#![deny(missing_docs)]

use core::fmt::{self, Write};

use tickq_core::{Model, Session};

#[cfg(feature = "stream")]
pub mod trades;

/// The magic bytes of a test vector file.
pub const MAGIC: &[u8; 4] = b"TQV1";

/// The largest input (values per vector) the run loop takes.
pub const MAX_INPUT: usize = 256;

/// A parsed `TQV1` test vector file.
#[derive(Debug, Clone, Copy)]
pub struct Vectors<'a> {
    body: &'a [u8],
    /// The number of vectors.
    pub count: usize,
    /// Input values per vector.
    pub input_len: usize,
    /// True for f32 inputs (`Session::run`), false for int8 inputs (`Session::run_quantized`).
    pub f32_inputs: bool,
    /// Logits per vector.
    pub classes: usize,
    /// The CRC-32 of the blob the expected logits belong to.
    pub blob_crc: u32,
}

fn le_u32(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    for (d, s) in w.iter_mut().zip(b) {
        *d = *s;
    }
    u32::from_le_bytes(w)
}

impl<'a> Vectors<'a> {
    /// Parses the header and checks the length.
    ///
    /// # Errors
    ///
    /// A short description of what is wrong.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, &'static str> {
        let (header, body) = bytes
            .split_at_checked(16)
            .ok_or("vectors: truncated header")?;
        if header.get(..4) != Some(&MAGIC[..]) {
            return Err("vectors: bad magic");
        }
        let count = le_u32(header.get(4..8).unwrap_or(&[])) as usize;
        let input_len = usize::from(u16::from_le_bytes([
            header.get(8).copied().unwrap_or(0),
            header.get(9).copied().unwrap_or(0),
        ]));
        let f32_inputs = match header.get(10) {
            Some(0) => false,
            Some(1) => true,
            _ => return Err("vectors: unknown input kind"),
        };
        let classes = usize::from(header.get(11).copied().unwrap_or(0));
        let v = Vectors {
            body,
            count,
            input_len,
            f32_inputs,
            classes,
            blob_crc: le_u32(header.get(12..16).unwrap_or(&[])),
        };
        if input_len > MAX_INPUT {
            return Err("vectors: more input values than MAX_INPUT");
        }
        if body.len() != count * v.record_len() {
            return Err("vectors: length does not match the header");
        }
        Ok(v)
    }

    fn record_len(&self) -> usize {
        let width = if self.f32_inputs { 4 } else { 1 };
        (self.input_len * width + self.classes).next_multiple_of(4)
    }

    /// Vector `i`: its input bytes and its expected logits.
    pub fn get(&self, i: usize) -> Option<(&'a [u8], &'a [u8])> {
        let len = self.record_len();
        let record = self.body.get(i * len..(i + 1) * len)?;
        let width = if self.f32_inputs { 4 } else { 1 };
        let (input, rest) = record.split_at_checked(self.input_len * width)?;
        Some((input, rest.get(..self.classes)?))
    }
}

/// What the run loop found.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    /// Vectors run.
    pub vectors: usize,
    /// Vectors whose logits differ from the expected ones.
    pub mismatches: usize,
    /// The fewest timer ticks one inference took (0 without a timer).
    pub ticks_min: u32,
    /// The most timer ticks one inference took.
    pub ticks_max: u32,
    /// The sum of the ticks of all inferences.
    pub ticks_total: u64,
    /// Per layer, the fewest timer ticks it took (layer 0: decoding and copying the input), for int8 inputs
    /// with a timer; all 0 otherwise.
    pub layer_ticks_min: [u32; tickq_core::MAX_LAYERS],
    /// The number of layers `layer_ticks_min` covers.
    pub layers: usize,
}

/// A cycle timer: returns the ticks elapsed since the previous call's `start`.
pub trait Timer {
    /// Reads the counter.
    fn now(&mut self) -> u32;
    /// The ticks between two readings.
    fn elapsed(&self, start: u32, end: u32) -> u32;
}

/// No timer: every inference takes 0 ticks.
pub struct NoTimer;

impl Timer for NoTimer {
    fn now(&mut self) -> u32 {
        0
    }
    fn elapsed(&self, _: u32, _: u32) -> u32 {
        0
    }
}

/// Runs every vector through `session`, prints one `vec` line each to `out`, and returns the summary.
///
/// # Errors
///
/// The writer's error.
#[inline(never)]
pub fn run_all<W: Write, T: Timer>(
    session: &mut Session<'_, '_, '_>,
    vectors: &Vectors<'_>,
    out: &mut W,
    timer: Option<&mut T>,
) -> Result<Summary, fmt::Error> {
    let mut summary = Summary {
        ticks_min: u32::MAX,
        ..Summary::default()
    };
    let mut timer = timer;
    let layers = session.model().layers().count();
    for i in 0..vectors.count {
        let Some((input, expected)) = vectors.get(i) else {
            break;
        };
        let start = timer.as_mut().map_or(0, |t| t.now());
        let prediction = if vectors.f32_inputs {
            run_f32(session, input)
        } else if let Some(t) = timer.as_mut() {
            // Per layer ticks: the time since the previous layer ended (or since `start` for layer 0).
            let mut last = start;
            let mut layer_ticks = [0u32; tickq_core::MAX_LAYERS];
            let prediction = run_i8_profiled(session, input, &mut |layer| {
                let now = t.now();
                if let Some(slot) = layer_ticks.get_mut(layer) {
                    *slot = t.elapsed(last, now);
                }
                last = now;
            });
            summary.layers = layers;
            for (m, &t) in summary.layer_ticks_min.iter_mut().zip(&layer_ticks) {
                *m = if summary.vectors == 0 { t } else { (*m).min(t) };
            }
            prediction
        } else {
            run_i8(session, input)
        };
        let end = timer.as_mut().map_or(0, |t| t.now());
        let ticks = timer.as_ref().map_or(0, |t| t.elapsed(start, end));
        let logits = prediction.logits();
        let ok = logits.len() == expected.len()
            && logits.iter().zip(expected).all(|(&a, &b)| a == b as i8);
        write!(out, "vec {i} signal {} logits ", prediction.signal())?;
        for (k, l) in logits.iter().enumerate() {
            if k > 0 {
                out.write_char(',')?;
            }
            write!(out, "{l}")?;
        }
        out.write_str(if ok { " ok" } else { " MISMATCH" })?;
        if timer.is_some() {
            write!(out, " ticks={ticks}")?;
        }
        out.write_char('\n')?;
        summary.vectors += 1;
        summary.mismatches += usize::from(!ok);
        summary.ticks_min = summary.ticks_min.min(ticks);
        summary.ticks_max = summary.ticks_max.max(ticks);
        summary.ticks_total += u64::from(ticks);
    }
    if summary.vectors == 0 {
        summary.ticks_min = 0;
    }
    Ok(summary)
}

/// Decodes an int8 input and runs it; its own frame, so the buffer is on the stack only during the call.
/// (The decoding is inside the timed region: a copy of `T * F` bytes, small next to the inference.)
#[inline(never)]
fn run_i8<'s>(session: &'s mut Session<'_, '_, '_>, input: &[u8]) -> tickq_core::Prediction<'s> {
    let mut q = [0i8; MAX_INPUT];
    for (d, &s) in q.iter_mut().zip(input) {
        *d = s as i8;
    }
    session.run_quantized(q.get(..input.len()).unwrap_or(&[]))
}

/// [`run_i8`] through [`Session::run_quantized_profiled`].
#[inline(never)]
fn run_i8_profiled<'s>(
    session: &'s mut Session<'_, '_, '_>,
    input: &[u8],
    after_layer: &mut dyn FnMut(usize),
) -> tickq_core::Prediction<'s> {
    let mut q = [0i8; MAX_INPUT];
    for (d, &s) in q.iter_mut().zip(input) {
        *d = s as i8;
    }
    session.run_quantized_profiled(q.get(..input.len()).unwrap_or(&[]), after_layer)
}

/// Decodes an f32 input and runs it, with its buffer in its own frame.
#[inline(never)]
fn run_f32<'s>(session: &'s mut Session<'_, '_, '_>, input: &[u8]) -> tickq_core::Prediction<'s> {
    let mut x = [0f32; MAX_INPUT];
    for (d, c) in x.iter_mut().zip(input.chunks_exact(4)) {
        *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    session.run(x.get(..input.len() / 4).unwrap_or(&[]))
}

/// Prints the header line.
///
/// # Errors
///
/// The writer's error.
pub fn header<W: Write>(
    out: &mut W,
    target: &str,
    model: &Model<'_>,
    vectors: &Vectors<'_>,
) -> Result<(), fmt::Error> {
    writeln!(
        out,
        "tickq-fw target={target} blob_len={} blob_crc={:08x} arena={} model_struct={} session_struct={} vectors={} input={} macs={}",
        model.blob_len(),
        model.crc32(),
        model.arena_bytes(),
        core::mem::size_of::<Model<'_>>(),
        core::mem::size_of::<Session<'_, '_, '_>>(),
        vectors.count,
        if vectors.f32_inputs { "f32" } else { "int8" },
        model.layers().map(|l| l.macs).sum::<u64>(),
    )
}

/// The stack below the caller is painted with this word, so [`stack_peak`] finds the deepest use.
pub const PAINT: u32 = 0xDEAD_BEEF;

/// Paints `[bottom, here - margin)`, where `here` is the caller's stack depth, with [`PAINT`].
///
/// # Safety
///
/// `bottom` must be the lowest address of the stack region (the end of `.bss`/`.uninit`, word aligned), the
/// stack must grow down, and nothing else may live between `bottom` and the current stack pointer.
#[inline(never)]
pub unsafe fn paint_stack(bottom: usize) {
    let marker = 0u8;
    let here = core::ptr::addr_of!(marker) as usize;
    let top = (here.saturating_sub(256)) & !3;
    let mut p = (bottom + 3) & !3;
    while p < top {
        // SAFETY: `p` lies in the unused part of the stack region, word aligned (see the contract above).
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// The bytes of stack used since [`paint_stack`]: `top` minus the lowest address whose paint was overwritten.
///
/// # Safety
///
/// As for [`paint_stack`], with `top` the highest address of the stack region.
pub unsafe fn stack_peak(bottom: usize, top: usize) -> usize {
    let mut p = (bottom + 3) & !3;
    // SAFETY: reads inside the stack region, word aligned.
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    top - p
}
