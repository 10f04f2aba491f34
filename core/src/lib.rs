//! Miyabi
