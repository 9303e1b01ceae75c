//! Image students: flat float inputs (`[batch, input_dim]`) to class logits.

pub mod cnn;
pub mod mlp;

pub use cnn::Cnn;
pub use mlp::Mlp;
