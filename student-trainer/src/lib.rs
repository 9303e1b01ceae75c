//! The student trainer library.
