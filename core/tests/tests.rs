//! Integration tests of tickq-core: encode models, load them, run them and compare with f32 math.
//!
//! One test binary (`autotests = false`) with one module per concern; everything needs the encoder, so the
//! binary is empty without the `alloc` feature.
#![cfg(feature = "alloc")]
#![allow(
    clippy::needless_range_loop,
    reason = "reference implementations index like the formulas they follow"
)]

mod support;

mod blob;
mod dense_dsp;
mod docs;
#[cfg(feature = "dynamic")]
mod dynamic;
mod features;
mod kernels;
mod ops;
mod robustness;
#[cfg(feature = "sparse-formats")]
mod sparse;
#[cfg(feature = "stream")]
mod stream;
#[cfg(feature = "stream")]
mod stream_market;
#[cfg(feature = "stream")]
mod stream_trades;
