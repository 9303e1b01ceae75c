//! Text students' data: ragged token columns ([`tokens`]), rows streamed in shuffle windows
//! keyed by id hash ([`rows`]), padded (optionally length-bucketed) batches on a background
//! thread ([`loader`]).

pub mod loader;
pub mod rows;
pub mod tokens;
