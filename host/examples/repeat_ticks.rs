//! Writes a large trade file for the "Histories larger than memory" measurements: the bundled ES ticks (or
//! `--data FILE`) repeated until `N` trades, each copy shifted in time past the previous one (an hour's gap, so
//! each copy is its own session), times as epoch milliseconds.
//!
//! `cargo run --release -p tickq-host --example repeat_ticks -- N OUT.csv [--data FILE]`

use std::io::{BufWriter, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(n), Some(out)) = (args.first(), args.get(1)) else {
        return Err("usage: repeat_ticks N OUT.csv [--data FILE]".into());
    };
    let n: usize = n.parse()?;
    let data = match args.iter().position(|a| a == "--data") {
        Some(i) => args
            .get(i + 1)
            .map(std::path::PathBuf::from)
            .ok_or("--data FILE")?,
        None => tickq_host::data::default_data_path()?,
    };
    let trades = tickq_host::data::load_trades(&data)?;
    let (first, last) = match (trades.first(), trades.last()) {
        (Some(f), Some(l)) => (f.timestamp_ms, l.timestamp_ms),
        _ => return Err("no trades".into()),
    };
    let shift = last - first + 3_600_000;
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    writeln!(w, "timestamp,price,size")?;
    for i in 0..n {
        let t = &trades[i % trades.len()];
        let copy = (i / trades.len()) as i64;
        writeln!(
            w,
            "{},{},{}",
            t.timestamp_ms + copy * shift,
            t.price,
            t.size
        )?;
    }
    w.flush()?;
    Ok(())
}
