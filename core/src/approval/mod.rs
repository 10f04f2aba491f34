mod notify;
pub use notify::*;
