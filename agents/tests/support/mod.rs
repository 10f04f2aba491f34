pub mod demo;
#[cfg(feature = "github")]
pub mod fake_github;
pub mod samples;
