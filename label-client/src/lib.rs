//! The label client library.
