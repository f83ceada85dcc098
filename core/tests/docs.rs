//! `docs/BLOB.md` against the loader: every format version and every weight format code the loader accepts is
//! described there, so the document cannot fall behind the code again.
//!
//! The accepted sets come from the loader itself (a blob re-stamped with each version and each weight format
//! byte), not from a list kept here, so a new version or code fails this test until the document has it.

use tickq_core::format::{
    FORMAT_VERSION, OLDEST_FORMAT_VERSION, WeightLayout, entry as e, header as h,
};
use tickq_core::{BlobErrorKind as K, Model};

use crate::support::*;

/// The blob format document, read at compile time.
const BLOB_MD: &str = include_str!("../../docs/BLOB.md");

/// The versions [`Model::load`] does not refuse by their version field.
fn accepted_versions() -> Vec<u16> {
    let blob = mlp_blob(8, 16, 3);
    (0..=64)
        .filter(|&v| {
            let b = patched(&blob, |b| put_u16(b, h::VERSION.start, v));
            !matches!(Model::load(&b), Err(err) if err.kind == K::UnsupportedVersion { found: v })
        })
        .collect()
}

/// The weight format codes [`Model::load`] knows on a Dense layer of a blob of the newest version (a code it
/// knows may still fail later checks, or be left out of this build, but not as an unknown format).
fn accepted_weight_formats() -> Vec<u8> {
    let blob = patched(&mlp_blob(8, 16, 3), |b| {
        put_u16(b, h::VERSION.start, FORMAT_VERSION)
    });
    (0..=u8::MAX)
        .filter(|&code| {
            let b = patched(&blob, |b| b[entry(1) + e::WEIGHT_FORMAT] = code);
            !matches!(Model::load(&b), Err(err) if err.kind == K::BadWeightFormat { found: code })
        })
        .collect()
}

/// Every weight layout, through a `match` without a wildcard: a new layout does not compile until it is here.
fn every_layout() -> [WeightLayout; 7] {
    let all = [
        WeightLayout::Blocked,
        WeightLayout::Sparse,
        WeightLayout::NM { n: 2, m: 4 },
        WeightLayout::Columns,
        WeightLayout::Packed,
        WeightLayout::DenseDsp,
        WeightLayout::DenseDot,
    ];
    for l in all {
        match l {
            WeightLayout::Blocked
            | WeightLayout::Sparse
            | WeightLayout::NM { .. }
            | WeightLayout::Columns
            | WeightLayout::Packed
            | WeightLayout::DenseDsp
            | WeightLayout::DenseDot => {}
        }
    }
    all
}

/// The layer entry table's `weight_format` row of `doc`, if it has one.
fn weight_format_row(doc: &str) -> Option<&str> {
    let start = format!("| {} | u8 | weight_format |", e::WEIGHT_FORMAT);
    doc.lines().find(|l| l.starts_with(&start))
}

/// The text of `row` from `version {v}:` to the next `version` (or the end), if the row has that clause.
fn version_clause(row: &str, v: u16) -> Option<&str> {
    let tag = format!("version {v}:");
    let start = row.find(&tag)? + tag.len();
    let rest = &row[start..];
    Some(&rest[..rest.find("version").unwrap_or(rest.len())])
}

/// What `doc` fails to say about `versions` (the versions the loader reads), one line per gap.
fn version_gaps(doc: &str, versions: &[u16]) -> Vec<String> {
    let mut gaps = Vec::new();
    let (Some(&oldest), Some(&newest)) = (versions.first(), versions.last()) else {
        return vec!["the loader reads no version".into()];
    };
    let title = format!("# tickq blob format, version {newest}\n");
    if !doc.starts_with(&title) {
        gaps.push(format!("the title is not {title:?}"));
    }
    let range = format!("the loader reads versions {oldest} to {newest}");
    if !doc.contains(&range) {
        gaps.push(format!("it does not say {range:?}"));
    }
    let row = weight_format_row(doc).unwrap_or("");
    for &v in versions {
        if version_clause(row, v).is_none() {
            gaps.push(format!(
                "the weight_format row has no \"version {v}:\" clause"
            ));
        }
        let added = format!("Version {v} adds");
        if v > oldest && !doc.contains(&added) {
            gaps.push(format!("it does not say what version {v} adds ({added:?})"));
        }
    }
    gaps
}

/// What `doc` fails to say about `layouts`, one line per gap: each code needs its `### Weight format {code}: `
/// section and a place in the weight_format row's clause of the version that added it (as `3 column-sparse`).
fn weight_format_gaps(doc: &str, layouts: &[WeightLayout]) -> Vec<String> {
    let mut gaps = Vec::new();
    let row = weight_format_row(doc).unwrap_or("");
    for l in layouts {
        let (code, name, v) = (l.code(), l.name(), l.min_version());
        if !doc.contains(&format!("\n### Weight format {code}: ")) {
            gaps.push(format!(
                "no \"### Weight format {code}: \" section for {name}"
            ));
        }
        let clause = version_clause(row, v).unwrap_or("");
        if !clause.split([' ', ',', ';']).any(|w| w == code.to_string()) {
            gaps.push(format!(
                "the weight_format row does not list code {code} ({name}) under \"version {v}:\""
            ));
        }
    }
    gaps
}

#[test]
fn the_loader_reads_exactly_the_documented_versions() {
    let versions = accepted_versions();
    let expected: Vec<u16> = (OLDEST_FORMAT_VERSION..=FORMAT_VERSION).collect();
    assert_eq!(
        versions, expected,
        "the loader reads OLDEST_FORMAT_VERSION..=FORMAT_VERSION"
    );
    let gaps = version_gaps(BLOB_MD, &versions);
    assert!(
        gaps.is_empty(),
        "docs/BLOB.md is behind the loader's versions: {gaps:#?}"
    );
}

#[test]
fn every_weight_format_code_is_documented() {
    let layouts = every_layout();
    let mut codes: Vec<u8> = layouts.iter().map(|l| l.code()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(
        codes.len(),
        layouts.len(),
        "weight layouts have distinct codes"
    );
    assert_eq!(
        accepted_weight_formats(),
        codes,
        "the loader knows exactly the layouts' codes"
    );
    let gaps = weight_format_gaps(BLOB_MD, &layouts);
    assert!(
        gaps.is_empty(),
        "docs/BLOB.md is behind the weight formats: {gaps:#?}"
    );
}

/// The checks above notice a code or a version taken out of the document.
#[test]
fn the_checks_notice_a_removal() {
    let layouts = every_layout();
    for (cut, what) in [
        ("6 dense-dot", "the weight_format row's code 6"),
        ("\n### Weight format 5: ", "format 5's section"),
        ("version 1: 0", "version 1's clause"),
    ] {
        assert!(BLOB_MD.contains(cut), "docs/BLOB.md has {what}");
        let doc = BLOB_MD.replacen(cut, "", 1);
        assert!(
            !weight_format_gaps(&doc, &layouts).is_empty(),
            "removing {what} goes unnoticed"
        );
    }
    let versions = accepted_versions();
    for cut in ["Version 5 adds", "the loader reads versions 1 to 5"] {
        let doc = BLOB_MD.replacen(cut, "", 1);
        assert!(
            !version_gaps(&doc, &versions).is_empty(),
            "removing {cut:?} goes unnoticed"
        );
    }
}
