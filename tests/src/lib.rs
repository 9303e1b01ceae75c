//! Shared test helpers: locate binaries and test data, start and stop servers.
