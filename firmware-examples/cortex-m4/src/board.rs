//! What both binaries of this example share: the embedded model, the SysTick timer and the semihosting
//! console.

use cortex_m::peripheral::SYST;
use cortex_m_semihosting::hio;
use tickq_fw_common::Timer;

/// The model: `BLOB` (16-byte aligned), `ARENA_BYTES` and, for a blob with a feature spec, `STATE_WORDS` and
/// `STREAM_ARENA_BYTES`, from `tickq export --format rust`.
#[allow(
    dead_code,
    reason = "the export defines every constant; each binary uses a few"
)]
pub mod model {
    include!(concat!(env!("OUT_DIR"), "/model.rs"));
}

/// SysTick on the core clock, counting down from 2^24 - 1.
pub struct SysTick(pub SYST);

impl Timer for SysTick {
    fn now(&mut self) -> u32 {
        SYST::get_current()
    }
    fn elapsed(&self, start: u32, end: u32) -> u32 {
        start.wrapping_sub(end) & 0x00FF_FFFF
    }
}

/// Writes to the semihosting console, one host call per string.
pub struct Console(pub hio::HostStream);

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.write_all(s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}
