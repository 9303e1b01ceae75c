//! The client side of teacher-server's API, shared by `distill-label` and the trainer's served
//! teacher: one record batch becomes a request body, the body is sent with retries, and the
//! server's answer (or its error body) comes back typed.
//!
//! - [`body`]: batches as Arrow IPC or JSON request bodies.
//! - [`retry`]: retry classification and backoff.
//! - [`client`]: the HTTP client of the server API.
//! - `testing` (feature `testing`): a loopback HTTP stub for tests.

pub mod body;
pub mod client;
pub mod retry;
#[cfg(feature = "testing")]
pub mod testing;

pub use client::{ClientConfig, ClientError, ScoreClient};
pub use retry::RetryPolicy;
