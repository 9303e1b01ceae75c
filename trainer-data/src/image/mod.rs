//! Image inputs: seeded jitter ([`jitter`]), the teacher's stored augmented views
//! ([`views`]) and the teacher asked per augmented batch ([`served`]).

pub mod jitter;
pub mod served;
pub mod views;
