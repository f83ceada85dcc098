//! One module per subcommand: its clap arguments and the function that runs it.

pub(crate) mod bench;
pub(crate) mod book_stats;
pub(crate) mod demo;
pub(crate) mod distill;
pub(crate) mod eval;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod inspect;
pub(crate) mod pipeline;
pub(crate) mod prune;
pub(crate) mod quantize;
pub(crate) mod replay;
pub(crate) mod run;
pub(crate) mod sensitivity;
pub(crate) mod stats;
pub(crate) mod train;
