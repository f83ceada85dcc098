//! tickq on a RISC-V soft core (`riscv32imc`, QEMU `virt`): loads the embedded blob, runs every embedded
//! test vector, prints the signal and int8 logits of each over semihosting, and exits with success only if
//! all match.
//!
//! `riscv32imc` has no FPU and no atomics beyond single-hart critical sections: the kind of core that sits
//! next to FPGA logic. Inference after the input quantizer is integer-only, so it needs neither.
#![no_std]
#![no_main]

use semihosting::process::ExitCode;
use tickq_core::{Model, Session};
use tickq_fw_common::{NoTimer, Vectors};

#[path = "board.rs"]
mod board;

use board::{Console, model};

/// The test vectors, from `tickq export --vectors N`.
static VECTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vectors.tqv"));

unsafe extern "C" {
    /// The bottom of the stack region, right after `.bss` and the (empty) heap (riscv-rt's linker script).
    static __estack: u32;
    /// The initial stack pointer (riscv-rt's linker script).
    static _stack_start: u32;
}

#[riscv_rt::entry]
fn main() -> ! {
    let ok = run().unwrap_or(false);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
    .exit_process()
}

fn run() -> Result<bool, core::fmt::Error> {
    use core::fmt::Write;
    let bottom = core::ptr::addr_of!(__estack) as usize;
    let top = core::ptr::addr_of!(_stack_start) as usize;
    // SAFETY: `[__estack, SP)` is unused stack, word aligned by the linker script.
    unsafe { tickq_fw_common::paint_stack(bottom) };
    let mut out = Console(semihosting::io::stdout().map_err(|_| core::fmt::Error)?);

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
    tickq_fw_common::header(&mut out, "riscv32imc", model, &vectors)?;
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
    let summary = tickq_fw_common::run_all(&mut session, &vectors, &mut out, None::<&mut NoTimer>)?;
    // SAFETY: as for `paint_stack`.
    let stack_run = unsafe { tickq_fw_common::stack_peak(bottom, top) };
    writeln!(
        out,
        "summary vectors={} mismatches={} stack_load={stack_load} stack_run={stack_run} stack_available={}",
        summary.vectors,
        summary.mismatches,
        top - bottom
    )?;
    Ok(summary.mismatches == 0 && summary.vectors == vectors.count)
}
