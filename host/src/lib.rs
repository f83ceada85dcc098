//! tickq-host (placeholder during bootstrap).
