//! The models that turn NIR into colour: the [`colorizer::Colorizer`] interface every model
//! implements and the loader of built-in names and weight files, the classical models
//! ([`linear`], [`l3`]), the neural networks ([`net`]), and the safetensors files that carry
//! their weights with a model card.

pub mod colorizer;
pub mod l3;
pub mod linear;
pub mod load;
pub mod lstsq;
pub mod net;
pub mod rng;
pub mod weights;

pub use load::{from_weights, load, load_bare, ColorizerError, BUILTIN};
