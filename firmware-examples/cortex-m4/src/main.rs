//! tickq on a Cortex-M4F (QEMU `mps2-an386`): loads the embedded blob, runs every embedded test vector,
//! prints the signal and int8 logits of each over semihosting, and exits with success only if all match.
//!
//! SysTick counts core clock ticks around each inference; under `qemu -icount shift=6` (the runner in
//! `.cargo/config.toml`) the count is repeatable; the `calib` line measures ticks per instruction on a loop of
//! known length (1.6 on QEMU 7.2, a 25 MHz SysTick against 64 ns per instruction: instructions = ticks * 40 / 64).
//! The `layers` line gives each layer's fewest ticks over the vectors (layer 0: decoding and copying the input).
#![no_std]
#![no_main]

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::entry;
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hio;
use panic_semihosting as _;
use tickq_core::{Model, Session};
use tickq_fw_common::{Timer, Vectors};

#[path = "board.rs"]
mod board;

use board::{Console, SysTick, model};

/// The test vectors, from `tickq export --vectors N`.
static VECTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vectors.tqv"));

unsafe extern "C" {
    /// The end of `.bss` and `.uninit`: the lowest address the stack may reach (cortex-m-rt's linker script).
    static __sheap: u32;
    /// The initial stack pointer (the top of RAM).
    static _stack_start: u32;
}

/// Runs `n` (at least 1) iterations of `subs; bne`: exactly `2 * n` instructions.
#[inline(always)]
fn spin(n: u32) {
    // SAFETY: a register-only countdown loop; it touches no memory and no stack.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {n}, {n}, #1",
            "bne 2b",
            n = inout(reg) n.max(1) => _,
            options(nomem, nostack),
        );
    }
}

#[entry]
fn main() -> ! {
    let ok = run().unwrap_or(false);
    debug::exit(if ok { EXIT_SUCCESS } else { EXIT_FAILURE });
    loop {
        cortex_m::asm::wfi();
    }
}

fn run() -> Result<bool, core::fmt::Error> {
    use core::fmt::Write;
    let bottom = core::ptr::addr_of!(__sheap) as usize;
    let top = core::ptr::addr_of!(_stack_start) as usize;
    // SAFETY: `[__sheap, SP)` is unused stack (no heap in this program), word aligned by the linker script.
    unsafe { tickq_fw_common::paint_stack(bottom) };

    let mut out = Console(hio::hstdout().map_err(|_| core::fmt::Error)?);
    let Some(mut p) = cortex_m::Peripherals::take() else {
        return Ok(false);
    };
    p.SYST.set_clock_source(SystClkSource::Core);
    p.SYST.set_reload(0x00FF_FFFF);
    p.SYST.clear_current();
    p.SYST.enable_counter();
    let mut timer = SysTick(p.SYST);

    // Calibration: a loop of exactly 20 000 instructions (`cortex_m::asm::delay(n)` is no reference: its
    // iteration count changed between cortex-m releases; 0.7.10 runs n + 1 iterations, 2n + 2 instructions).
    let start = timer.now();
    spin(10_000);
    let end = timer.now();
    writeln!(
        out,
        "calib delay_instructions=20000 ticks={}",
        timer.elapsed(start, end)
    )?;

    let vectors = match Vectors::parse(VECTORS) {
        Ok(v) => v,
        Err(e) => {
            writeln!(out, "error {e}")?;
            return Ok(false);
        }
    };
    // `load_into` builds the model in place in `slot`, so only one copy of `Model` (several KB) is ever on the
    // stack, which a 16 KB part needs.
    let mut slot = None;
    let model = match Model::load_into(&mut slot, model::BLOB) {
        Ok(m) => m,
        Err(e) => {
            writeln!(out, "error blob: {e}")?;
            return Ok(false);
        }
    };
    // SAFETY: as for `paint_stack`.
    let stack_load = unsafe { tickq_fw_common::stack_peak(bottom, top) };
    // SAFETY: as above; the painted region is below this frame.
    unsafe { tickq_fw_common::paint_stack(bottom) };
    tickq_fw_common::header(&mut out, "cortex-m4", model, &vectors)?;
    if vectors.blob_crc != model.crc32() {
        writeln!(
            out,
            "error the vectors belong to blob {:08x}",
            vectors.blob_crc
        )?;
        return Ok(false);
    }
    let mut arena = [0u8; model::ARENA_BYTES];
    let Ok(mut session) = Session::new(model, &mut arena) else {
        writeln!(out, "error arena too small")?;
        return Ok(false);
    };
    let summary = tickq_fw_common::run_all(&mut session, &vectors, &mut out, Some(&mut timer))?;
    write!(out, "layers ticks_min=")?;
    for (i, t) in summary
        .layer_ticks_min
        .iter()
        .take(summary.layers)
        .enumerate()
    {
        if i > 0 {
            out.write_char(',')?;
        }
        write!(out, "{t}")?;
    }
    out.write_char('\n')?;
    // SAFETY: as for `paint_stack`.
    let stack_run = unsafe { tickq_fw_common::stack_peak(bottom, top) };
    writeln!(
        out,
        "summary vectors={} mismatches={} ticks_min={} ticks_max={} ticks_total={} stack_load={stack_load} stack_run={stack_run} stack_available={}",
        summary.vectors,
        summary.mismatches,
        summary.ticks_min,
        summary.ticks_max,
        summary.ticks_total,
        top - bottom
    )?;
    let unaligned = run_unaligned(&vectors, &mut out)?;
    Ok(summary.mismatches == 0 && summary.vectors == vectors.count && unaligned)
}

/// Runs every vector again on a copy of the blob that starts one byte past a word boundary, and prints one
/// `unaligned` line: with the weights unaligned, the `dense-dsp` kernel cannot use `LDRD` and takes its
/// one-channel `LDR` loop instead, which must give the same logits.
/// Returns whether every vector matched (true for blobs without `dense-dsp` layers, which run as usual).
#[inline(never)]
fn run_unaligned(vectors: &Vectors<'_>, out: &mut Console) -> Result<bool, core::fmt::Error> {
    use core::fmt::Write;
    let mut copy = [0u8; model::BLOB_LEN + 4];
    // The first index of `copy` at an address that is 1 more than a multiple of 4.
    let start = (5 - (copy.as_ptr() as usize) % 4) % 4;
    let Some(dst) = copy.get_mut(start..start + model::BLOB_LEN) else {
        return Ok(false);
    };
    dst.copy_from_slice(model::BLOB);
    let blob = &copy[start..start + model::BLOB_LEN];
    let mut slot = None;
    let Ok(model) = Model::load_into(&mut slot, blob) else {
        writeln!(out, "unaligned error blob")?;
        return Ok(false);
    };
    let mut arena = [0u8; model::ARENA_BYTES];
    let Ok(mut session) = Session::new(model, &mut arena) else {
        return Ok(false);
    };
    let mut mismatches = 0;
    for i in 0..vectors.count {
        let Some((input, expected)) = vectors.get(i) else {
            return Ok(false);
        };
        let mut q = [0i8; tickq_fw_common::MAX_INPUT];
        for (d, &s) in q.iter_mut().zip(input) {
            *d = s as i8;
        }
        let logits = session
            .run_quantized(q.get(..input.len()).unwrap_or(&[]))
            .logits();
        let ok = logits.len() == expected.len()
            && logits.iter().zip(expected).all(|(&a, &b)| a == b as i8);
        mismatches += usize::from(!ok);
    }
    writeln!(
        out,
        "unaligned blob_offset_mod4={} vectors={} mismatches={mismatches}",
        blob.as_ptr() as usize % 4,
        vectors.count
    )?;
    Ok(mismatches == 0 && !(blob.as_ptr() as usize).is_multiple_of(4))
}
