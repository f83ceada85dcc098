//! tickq tick to signal on a RISC-V soft core (`riscv32imc`, QEMU `virt`, no FPU): loads the embedded blob,
//! which carries its feature spec, streams the embedded raw trades through `tickq_core::stream::StreamSession`
//! (the feature engine's f32 arithmetic in software floating point, then the integer model), prints every
//! signal over semihosting, and exits with success only if every signal and logit matches the host's, which
//! computed the same features with its FPU.
#![no_std]
#![no_main]

use semihosting::process::ExitCode;
use tickq_core::Model;
use tickq_core::stream::StreamSession;
use tickq_fw_common::NoTimer;
use tickq_fw_common::trades::{TradeVectors, run_trades};

#[path = "../board.rs"]
mod board;

use board::{Console, model};

/// The raw trades and the host's signals, from `tickq export --trade-vectors N`.
static TRADES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/trades.tqt"));

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
    let mut out = Console(semihosting::io::stdout().map_err(|_| core::fmt::Error)?);
    let trades = match TradeVectors::parse(TRADES) {
        Ok(v) => v,
        Err(e) => {
            writeln!(out, "error {e}")?;
            return Ok(false);
        }
    };
    let mut slot = None;
    let model = match Model::load_into(&mut slot, model::BLOB) {
        Ok(m) => m,
        Err(e) => {
            writeln!(out, "error blob: {e}")?;
            return Ok(false);
        }
    };
    if trades.blob_crc != model.crc32() {
        writeln!(
            out,
            "error the trades belong to blob {:08x}",
            trades.blob_crc
        )?;
        return Ok(false);
    }
    // The state and the arena on the stack: this board gives the program a megabyte of RAM.
    let mut state = [0i64; model::STATE_WORDS];
    let mut arena = [0u8; model::STREAM_ARENA_BYTES];
    let mut stream = match StreamSession::new(model, &mut arena, &mut state) {
        Ok(s) => s,
        Err(e) => {
            writeln!(out, "error stream: {e}")?;
            return Ok(false);
        }
    };
    writeln!(
        out,
        "tickq-fw-stream target=riscv32imc blob_len={} blob_crc={:08x} state_words={} arena={} trades={}",
        model.blob_len(),
        model.crc32(),
        model::STATE_WORDS,
        model::STREAM_ARENA_BYTES,
        trades.count
    )?;
    let summary = run_trades(&mut stream, &trades, &mut out, &mut NoTimer, &mut [])?;
    writeln!(
        out,
        "stream_summary trades={} signals={} mismatches={}",
        summary.trades, summary.signals, summary.mismatches
    )?;
    Ok(summary.mismatches == 0 && summary.trades == trades.count && summary.signals > 0)
}
