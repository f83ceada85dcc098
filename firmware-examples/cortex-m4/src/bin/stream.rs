//! tickq tick to signal on a Cortex-M4F (QEMU `mps2-an386`): loads the embedded blob, which carries its feature
//! spec, streams the embedded raw trades through `tickq_core::stream::StreamSession` (the feature engine, then
//! the model), prints every signal over semihosting, and exits with success only if every signal and logit
//! matches the host's.
//!
//! SysTick counts core clock ticks around each `push_trade`; under `qemu -icount shift=6` the count is
//! repeatable (instructions = ticks * 40 / 64, see the `calib` line of the other example).
#![no_std]
#![no_main]

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::entry;
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hio;
use panic_semihosting as _;
use tickq_core::Model;
use tickq_core::stream::StreamSession;
use tickq_fw_common::trades::{TradeVectors, median, run_trades};

#[path = "../board.rs"]
mod board;

use board::{Console, SysTick, model};

/// The raw trades and the host's signals, from `tickq export --trade-vectors N`.
static TRADES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/trades.tqt"));

/// The most trades whose ticks are kept for the median.
const MAX_TIMED: usize = 1024;

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
    let mut out = Console(hio::hstdout().map_err(|_| core::fmt::Error)?);
    let Some(mut p) = cortex_m::Peripherals::take() else {
        return Ok(false);
    };
    p.SYST.set_clock_source(SystClkSource::Core);
    p.SYST.set_reload(0x00FF_FFFF);
    p.SYST.clear_current();
    p.SYST.enable_counter();
    let mut timer = SysTick(p.SYST);

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
    // The engine's state and the arena live in `.bss` (`singleton!` hands out each once), not on the stack.
    let Some(state) = cortex_m::singleton!(: [i64; model::STATE_WORDS] = [0; model::STATE_WORDS])
    else {
        return Ok(false);
    };
    let Some(arena) =
        cortex_m::singleton!(: [u8; model::STREAM_ARENA_BYTES] = [0; model::STREAM_ARENA_BYTES])
    else {
        return Ok(false);
    };
    let mut stream = match StreamSession::new(model, arena, state) {
        Ok(s) => s,
        Err(e) => {
            writeln!(out, "error stream: {e}")?;
            return Ok(false);
        }
    };
    writeln!(
        out,
        "tickq-fw-stream target=cortex-m4 blob_len={} blob_crc={:08x} state_words={} arena={} trades={}",
        model.blob_len(),
        model.crc32(),
        model::STATE_WORDS,
        model::STREAM_ARENA_BYTES,
        trades.count
    )?;
    let mut ticks = [0u32; MAX_TIMED];
    let summary = run_trades(&mut stream, &trades, &mut out, &mut timer, &mut ticks)?;
    let timed = summary.trades.min(MAX_TIMED);
    let ticks_median = median(ticks.get_mut(..timed).unwrap_or(&mut []));
    writeln!(
        out,
        "stream_summary trades={} signals={} mismatches={} ticks_min={} ticks_median={ticks_median} ticks_max={} ticks_total={}",
        summary.trades,
        summary.signals,
        summary.mismatches,
        summary.ticks_min,
        summary.ticks_max,
        summary.ticks_total
    )?;
    Ok(summary.mismatches == 0 && summary.trades == trades.count && summary.signals > 0)
}
