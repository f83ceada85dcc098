//! Tests of the table reader: every input kind, the feed formats of docs/DATA.md, and the exact messages of bad
//! input.

use std::path::{Path, PathBuf};

use super::*;
use crate::data::{Side, load_trades_with, parse_trades};
use crate::options::read::{ColumnMap, EpochUnit, TimeFormat};

fn opts(columns: &str, time_format: &str) -> ReadOptions {
    ReadOptions {
        columns: (!columns.is_empty()).then(|| columns.parse().unwrap()),
        time_format: (!time_format.is_empty()).then(|| time_format.parse().unwrap()),
        ..ReadOptions::default()
    }
}

fn read(text: &str, options: &ReadOptions, wanted: &[Wanted]) -> Result<Table, DataError> {
    read_table_from(text.as_bytes(), "t.csv", options, wanted)
}

fn err(text: &str, options: &ReadOptions, wanted: &[Wanted]) -> String {
    match read(text, options, wanted) {
        Ok(t) => panic!("expected an error, read {t:?}"),
        Err(e) => e.to_string(),
    }
}

/// A scratch directory of its own for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tickq-table-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 2020-01-01T00:00:00Z in milliseconds.
const JAN1: i64 = 1_577_836_800_000;
const HOUR: i64 = 3_600_000;

#[test]
fn fx_feed_bars_in_their_own_format() {
    // The FX feed's export: `Time,Open,High,Low,Close,Volume`, times `DD.MM.YYYY HH:MM:SS.mmm`.
    let text = "Time,Open,High,Low,Close,Volume\r\n\
                01.01.2020 00:00:00.000,1.12120,1.12150,1.12100,1.12140,1520.5\r\n\
                01.01.2020 00:01:00.000,1.12140,1.12160,1.12130,1.12135,980\r\n\
                01.01.2020 00:02:00.500,1.12135,1.12135,1.12090,1.12100,1204.25\r\n";
    let t = read(text, &opts("", "%d.%m.%Y %H:%M:%S%.3f"), BAR_ROLES).unwrap();
    assert_eq!(t.times, [JAN1, JAN1 + 60_000, JAN1 + 120_500]);
    assert_eq!(t.lines, [2, 3, 4]);
    assert_eq!(t.numbers(Role::Open).unwrap(), [1.1212, 1.1214, 1.12135]);
    assert_eq!(t.numbers(Role::Close).unwrap()[2], 1.121);
    assert_eq!(t.numbers(Role::Volume).unwrap(), [1520.5, 980.0, 1204.25]);
    let high = t.column(Role::High).unwrap();
    assert_eq!((high.header.as_str(), high.column), ("High", 3));
    assert_eq!(t.notes, ReadNotes::default());
    // The same file in New York time is five hours later in UTC.
    let ny = ReadOptions {
        time_zone: Some("America/New_York".parse().unwrap()),
        ..opts("", "%d.%m.%Y %H:%M:%S%.3f")
    };
    assert_eq!(
        read(text, &ny, BAR_ROLES).unwrap().times[0],
        JAN1 + 5 * HOUR
    );
    // Without the pattern the time does not parse, and the message names line, column, value and formats.
    assert_eq!(
        err(text, &ReadOptions::default(), BAR_ROLES),
        "t.csv, line 2, column 1 (Time): bad timestamp `01.01.2020 00:00:00.000` (expected \
         `YYYY-MM-DD HH:MM:SS[.fff]`, `YYYY-MM-DDTHH:MM:SS[.fff][Z]` or an epoch integer (seconds, milliseconds, \
         microseconds or nanoseconds by magnitude))"
    );
}

/// A file in CryptoDataDownload's format, newest-first, with its preamble line.
const CDD: &str = "Timestamps are UTC timezone,https://www.CryptoDataDownload.com\n\
                   date,symbol,open,high,low,close,volume_btc,volume\n\
                   2020-01-01 02-AM,BTCUSD,7180.5,7200,7170,7195.25,61.25,440681.2\n\
                   2020-01-01 01-AM,BTCUSD,7170,7185,7160,7180.5,12.5,89790\n\
                   2020-01-01 12-AM,BTCUSD,7165,7175,7150,7170,20,143400\n";

#[test]
fn crypto_data_download_newest_first_is_reversed_with_a_note() {
    let o = opts("volume=volume_btc", "%Y-%m-%d %I-%p");
    let t = read(CDD, &o, BAR_ROLES).unwrap();
    assert_eq!(t.times, [JAN1, JAN1 + HOUR, JAN1 + 2 * HOUR]);
    assert_eq!(t.lines, [5, 4, 3]);
    assert_eq!(t.numbers(Role::Close).unwrap(), [7170.0, 7180.5, 7195.25]);
    assert_eq!(t.numbers(Role::Volume).unwrap(), [20.0, 12.5, 61.25]);
    assert!(t.notes.reversed);
    assert_eq!(
        t.notes.messages("t.csv"),
        ["note: t.csv is newest-first; its rows were reversed into time order"]
    );
    // Two volume columns are never a silent pick.
    assert_eq!(
        err(CDD, &opts("", "%Y-%m-%d %I-%p"), BAR_ROLES),
        "t.csv, line 2: columns 7 (`volume_btc`) and 8 (`volume`) could both be the `volume` column; name the one \
         to read, e.g. --columns volume=volume_btc (`columns = { volume = \"volume_btc\" }` under `[data.read]` in \
         a pipeline)"
    );
    // Without a mapping the header line (which names a time) is the one the error shows, not the preamble.
    assert_eq!(
        err(CDD, &opts("", "%Y-%m-%d %I-%p"), TRADE_ROLES),
        "t.csv, line 2: missing required column `price` (accepted names: price, trade_price, last_price; or name \
         it with --columns price=HEADER); header found: `date,symbol,open,high,low,close,volume_btc,volume`"
    );
    // As trades: the close as the price and the BTC volume as the size.
    let dir = scratch("cdd");
    let path = dir.join("Coinbase_BTCUSD_1h.csv");
    std::fs::write(&path, CDD).unwrap();
    let loaded = load_trades_with(
        &path,
        &opts("price=close,size=volume_btc", "%Y-%m-%d %I-%p"),
    )
    .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(loaded.trades.len(), 3);
    assert_eq!(loaded.trades[0].timestamp_ms, JAN1);
    assert_eq!(loaded.trades[2].price, 7195.25);
    assert_eq!(loaded.trades[2].size, 61.25);
    assert!(loaded.notes.reversed);
}

#[test]
fn quotes_tab_separated_with_epoch_times() {
    let text = "timestamp\tbid\task\tbid_size\task_size\n\
                1577836800000\t99.5\t100\t3\t4\n\
                1577836800250\t99.75\t100.25\t1\t2\n";
    let t = read(text, &ReadOptions::default(), QUOTE_ROLES).unwrap();
    assert_eq!(t.times, [JAN1, JAN1 + 250]);
    assert_eq!(t.numbers(Role::Bid).unwrap(), [99.5, 99.75]);
    assert_eq!(t.numbers(Role::BidSize).unwrap(), [3.0, 1.0]);
    assert_eq!(t.numbers(Role::AskSize).unwrap(), [4.0, 2.0]);
    assert_eq!(t.column(Role::Ask).unwrap().column, 3);
    // Epoch seconds by keyword, microseconds by magnitude.
    let secs = "time|bid|ask|bid size|ask size\n1577836800.5|1|2|3|4\n";
    let o = ReadOptions {
        time_format: Some(TimeFormat::Epoch(EpochUnit::Seconds)),
        ..ReadOptions::default()
    };
    assert_eq!(read(secs, &o, QUOTE_ROLES).unwrap().times, [JAN1 + 500]);
    let micros = "time;bid;ask;bid_size;ask_size\n1577836800000123;1;2;3;4\n";
    assert_eq!(
        read(micros, &ReadOptions::default(), QUOTE_ROLES)
            .unwrap()
            .times,
        [JAN1]
    );
}

#[test]
fn quoting_delimiters_whitespace_and_skip_rows() {
    // Semicolons, a quoted field holding the delimiter and a line end, spaces around fields, a BOM, CRLF.
    let text = "\u{feff}note;Time ; Price;Qty\r\n\
                \"a; b\";2020-01-01 00:00:00; 10.5 ; 2\r\n\
                \"two\r\nlines\";2020-01-01 00:00:01;10.25;\"3\"\r\n\
                x;2020-01-01 00:00:02;10;1\r\n";
    let trades = parse_trades(text.as_bytes(), "t.csv").unwrap();
    assert_eq!(trades.len(), 3);
    assert_eq!(trades[0].price, 10.5);
    assert_eq!(trades[1].size, 3.0);
    assert_eq!(trades[2].timestamp_ms, JAN1 + 2000);
    // The third row starts on line 5: the quoted line end counts.
    let bad = text.replace("x;2020-01-01 00:00:02;10;1", "x;2020-01-01 00:00:02;ten;1");
    assert_eq!(
        parse_trades(bad.as_bytes(), "t.csv")
            .unwrap_err()
            .to_string(),
        "t.csv, line 5, column 3 (Price): `ten` is not a number"
    );
    // --skip-rows: the header is then the first line after them, not searched for.
    let preamble = "exported by X\nsecond line, with a comma\ntime,price,size\n1,1,1\n";
    let o = ReadOptions {
        skip_rows: Some(2),
        ..ReadOptions::default()
    };
    let t = read(preamble, &o, TRADE_ROLES).unwrap();
    assert_eq!(t.lines, [4]);
    let o = ReadOptions {
        skip_rows: Some(1),
        ..ReadOptions::default()
    };
    assert_eq!(
        err(preamble, &o, TRADE_ROLES),
        "t.csv, line 2: missing required column `time` (accepted names: timestamp, ts, time, date, datetime, \
         date_time, gmt_time, local_time; or name it with --columns time=HEADER); header found: `second line,with \
         a comma`"
    );
    // A given delimiter wins over detection.
    let o = ReadOptions {
        delimiter: Some("|".parse().unwrap()),
        ..ReadOptions::default()
    };
    assert_eq!(
        err("time,price,size\n1,1,1\n", &o, TRADE_ROLES),
        "t.csv, line 1: missing required column `time` (accepted names: timestamp, ts, time, date, datetime, \
         date_time, gmt_time, local_time; or name it with --columns time=HEADER); header found: \
         `time,price,size`"
    );
}

#[test]
fn column_mapping_and_its_errors() {
    let text = "When,Last,Amount,Aggressor\n2020-01-01 00:00:00,5,1,S\n";
    let trades = parse_trades(text.as_bytes(), "t.csv").unwrap_err();
    assert_eq!(
        trades.to_string(),
        "t.csv, line 1: missing required column `time` (accepted names: timestamp, ts, time, date, datetime, \
         date_time, gmt_time, local_time; or name it with --columns time=HEADER); header found: \
         `When,Last,Amount,Aggressor`"
    );
    let o = opts("time=when,price=Last", "");
    let t = read(text, &o, TRADE_ROLES).unwrap();
    assert_eq!(t.column(Role::Time).map(|c| c.column), None);
    assert_eq!((t.time_header.as_str(), t.time_column), ("When", 1));
    assert_eq!(t.numbers(Role::Price).unwrap(), [5.0]);
    assert_eq!(t.text(Role::Side).unwrap(), ["S"]);
    assert_eq!(
        err(text, &opts("time=When,price=Close", ""), TRADE_ROLES),
        "t.csv, line 1: the column mapping reads `price` from `Close`, but no column has that name; header \
         found: `When,Last,Amount,Aggressor`"
    );
    assert_eq!(
        err(text, &opts("time=When,bid=Last", ""), TRADE_ROLES),
        "t.csv: the column mapping names `bid`, which this input does not read (it reads time, price, size, side)"
    );
    // Aliases with a unit suffix, and one header for two roles by alias.
    let ambiguous = "time,price,size,qty\n1,1,1,1\n";
    assert_eq!(
        err(ambiguous, &ReadOptions::default(), TRADE_ROLES),
        "t.csv, line 1: columns 3 (`size`) and 4 (`qty`) could both be the `size` column; name the one to read, \
         e.g. --columns size=size (`columns = { size = \"size\" }` under `[data.read]` in a pipeline)"
    );
    let t = read(ambiguous, &opts("size=qty", ""), TRADE_ROLES).unwrap();
    assert_eq!(t.column(Role::Size).unwrap().column, 4);
    let suffixed = "Date Time,Price USD,Volume-BTC\n2020-01-01 00:00:00,1,2\n";
    let t = read(suffixed, &ReadOptions::default(), TRADE_ROLES).unwrap();
    assert_eq!(t.numbers(Role::Size).unwrap(), [2.0]);
    // A whole header that is another role's alias is not a suffixed alias (`bid_size` is not a `bid`).
    assert!(alias_match(Role::Bid, "bid_usd"));
    assert!(!alias_match(Role::Bid, "bid_size"));
    let map: ColumnMap = "time=a".parse().unwrap();
    assert_eq!(map.get(Role::Time), Some("a"));
}

#[test]
fn time_formats_and_zones_in_messages() {
    let text = "time,price,size\n2020-01-01 00:00:00,1,1\n";
    let o = ReadOptions {
        time_format: Some(TimeFormat::Pattern("%i".to_owned())),
        ..ReadOptions::default()
    };
    let e = err(text, &o, TRADE_ROLES);
    assert!(
        e.starts_with("t.csv: time_format: `%i` is not a strftime pattern: "),
        "{e}"
    );
    assert_eq!(
        err(text, &opts("", "%d.%m.%Y %H:%M"), TRADE_ROLES),
        "t.csv, line 2, column 1 (time): bad timestamp `2020-01-01 00:00:00` (expected the pattern `%d.%m.%Y %H:%M`)"
    );
    assert_eq!(
        err(
            "time,price,size\n1.5,1,1\n",
            &opts("", "epoch-ms"),
            TRADE_ROLES
        ),
        "t.csv, line 2, column 1 (time): bad timestamp `1.5` (expected an integer for --time-format epoch-ms)"
    );
}

#[test]
fn row_order_errors_name_both_lines() {
    let back = "time,price,size\n2020-01-01 00:00:01,1,1\n2020-01-01 00:00:02,1,1\n\n2020-01-01 00:00:00.5,1,1\n";
    assert_eq!(
        err(back, &ReadOptions::default(), TRADE_ROLES),
        "t.csv, line 5, column 1 (time): time goes backwards: `2020-01-01 00:00:00.5` is 1500 ms before the \
         previous row (line 3)"
    );
    let forward = "time,price,size\n5000,1,1\n4000,1,1\n4500,1,1\n3000,1,1\n";
    assert_eq!(
        err(forward, &opts("", "epoch-ms"), TRADE_ROLES),
        "t.csv, line 4, column 1 (time): the file is newest-first, but `4500` is 500 ms after the previous row \
         (line 3)"
    );
    // Equal times in a newest-first file are fine, and stay in file order reversed.
    let t = read(
        "time,price,size\n3,1,1\n2,5,1\n2,6,1\n1,1,1\n",
        &opts("", "epoch-ms"),
        TRADE_ROLES,
    )
    .unwrap();
    assert_eq!(t.times, [1, 2, 2, 3]);
    assert_eq!(t.numbers(Role::Price).unwrap(), [1.0, 6.0, 5.0, 1.0]);
}

#[test]
fn duplicate_rows_are_counted_and_kept() {
    let mut text = String::from("time,price,size,side\n");
    for (t, p, s) in [
        (1, 1, "b"),
        (1, 1, "b"),
        (1, 1, "s"),
        (2, 1, "s"),
        (2, 1, "s"),
        (2, 1, "s"),
    ] {
        text.push_str(&format!("{t},{p},1,{s}\n"));
    }
    for k in 0..6 {
        text.push_str(&format!("{},1,1,b\n{},1,1,b\n", 3 + k, 3 + k));
    }
    let t = read(&text, &opts("", "epoch-ms"), TRADE_ROLES).unwrap();
    assert_eq!(t.len(), 18);
    assert_eq!(t.notes.duplicates, 9);
    assert_eq!(t.notes.duplicate_lines, [3, 6, 7, 9, 11]);
    assert_eq!(
        t.notes.messages("t.csv"),
        [
            "note: t.csv: 9 row(s) repeat the row before them exactly (line(s) 3, 6, 7, 9, 11, ...); they are kept"
        ]
    );
}

/// Writes a small Parquet file: `ts` TIMESTAMP(MILLIS) or a string, `price` DOUBLE, `size` INT32, `side` string.
fn write_parquet(path: &Path, string_times: bool, sizes: &[i32]) {
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    use std::sync::Arc;

    let ts = if string_times {
        "REQUIRED BYTE_ARRAY ts (UTF8);"
    } else {
        "REQUIRED INT64 ts (TIMESTAMP(MILLIS,true));"
    };
    let schema = format!(
        "message trades {{ {ts} REQUIRED DOUBLE price; REQUIRED INT32 size; REQUIRED BYTE_ARRAY side (UTF8); }}"
    );
    let schema = Arc::new(parse_message_type(&schema).unwrap());
    let file = std::fs::File::create(path).unwrap();
    let mut writer =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
            .unwrap();
    let n = sizes.len();
    let mut group = writer.next_row_group().unwrap();
    let mut k = 0;
    while let Some(mut column) = group.next_column().unwrap() {
        match k {
            0 if string_times => {
                let v: Vec<ByteArray> = (0..n)
                    .map(|i| ByteArray::from(format!("01.01.2020 00:00:0{i}.000").as_str()))
                    .collect();
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&v, None, None)
                    .unwrap();
            }
            0 => {
                let v: Vec<i64> = (0..n as i64).map(|i| JAN1 + 1000 * i).collect();
                column
                    .typed::<Int64Type>()
                    .write_batch(&v, None, None)
                    .unwrap();
            }
            1 => {
                let v: Vec<f64> = (0..n).map(|i| 100.0 + 0.25 * i as f64).collect();
                column
                    .typed::<DoubleType>()
                    .write_batch(&v, None, None)
                    .unwrap();
            }
            2 => {
                column
                    .typed::<Int32Type>()
                    .write_batch(sizes, None, None)
                    .unwrap();
            }
            _ => {
                let v: Vec<ByteArray> = (0..n)
                    .map(|i| ByteArray::from(if i % 2 == 0 { "buy" } else { "s" }))
                    .collect();
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&v, None, None)
                    .unwrap();
            }
        }
        column.close().unwrap();
        k += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_trades_through_the_same_roles() {
    let dir = scratch("parquet");
    let path = dir.join("trades.parquet");
    write_parquet(&path, false, &[3, 1, 2]);
    let loaded = load_trades_with(&path, &ReadOptions::default()).unwrap();
    assert_eq!(loaded.trades.len(), 3);
    assert_eq!(loaded.trades[1].timestamp_ms, JAN1 + 1000);
    assert_eq!(loaded.trades[2].price, 100.5);
    assert_eq!(loaded.trades[0].size, 3.0);
    assert_eq!(loaded.trades[0].side, Some(Side::Buy));
    assert_eq!(loaded.trades[1].side, Some(Side::Sell));
    // String times through the time format, and a mapping.
    let strings = dir.join("strings.pq");
    write_parquet(&strings, true, &[1, 1]);
    let t = read_table(
        &strings,
        &opts("time=ts,size=size", "%d.%m.%Y %H:%M:%S%.3f"),
        TRADE_ROLES,
    )
    .unwrap();
    assert_eq!(t.times, [JAN1, JAN1 + 1000]);
    assert_eq!(t.notes.duplicates, 0);
    // A wrong column type names the file, the column and both types.
    let e = read_table(&path, &opts("price=side", ""), TRADE_ROLES)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}, column `side`: the `price` column is BYTE_ARRAY (UTF8), expected an INT32, INT64, FLOAT or \
             DOUBLE column",
            path.display()
        )
    );
    let e = read_table(
        &path,
        &opts("price=price,size=price,side=size", ""),
        TRADE_ROLES,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        format!(
            "{}, column `size`: the `side` column is INT32, expected a string (BYTE_ARRAY) column",
            path.display()
        )
    );
    let e = read_table(&path, &ReadOptions::default(), BAR_ROLES)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}, line 1: missing required column `open` (accepted names: open; or name it with --columns \
             open=HEADER); header found: `ts,price,size,side`",
            path.display()
        )
    );
    // Not Parquet at all, or text read as Parquet.
    let text = dir.join("t.csv");
    std::fs::write(&text, "time,price,size\n1,1,1\n").unwrap();
    let o = ReadOptions {
        file_format: Some(crate::options::read::FileFormat::Parquet),
        ..ReadOptions::default()
    };
    let e = read_table(&text, &o, TRADE_ROLES).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: cannot read as Parquet: ", text.display())),
        "{e}"
    );
    // Sizes the trade rules refuse are refused with the row as the line.
    let negative = dir.join("negative.parquet");
    write_parquet(&negative, false, &[1, -2]);
    let e = load_trades_with(&negative, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}, line 2, column 3 (size): size -2 must be >= 0",
            negative.display()
        )
    );
    std::fs::remove_dir_all(&dir).ok();
}
