//! The teacher server library.
