pub mod samples;
#[cfg(feature = "github")]
pub mod fake_github;
