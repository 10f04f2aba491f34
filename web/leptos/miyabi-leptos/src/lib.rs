//! Leptos components for Miyabi.
//!
//! - [`MiyabiWorkflow`]: a workflow's run, rendered on the server (its status, steps and the
//!   gate it waits at), then followed live in the browser over the run's server-sent events,
//!   with a form to start a run, approval buttons with the data under review (editable), and an
//!   `on_complete` callback. [`MastraWorkflow`] is the same component under the name of the
//!   brief's example.
//! - [`MiyabiChat`]: a chat with an agent: the messages go to an agent route of the app, whose
//!   answer streams back in the AI SDK's UI message stream protocol (text parts; the route is
//!   [`chat_events`] on the server, feature `ssr`).
//!
//! The components talk to Miyabi's HTTP API (`miyabi::server::router`, mounted next to the
//! app's pages; see [`MiyabiApi`]); on the server they read runs from the engine given with
//! `provide_engine` (feature `ssr`). Enable exactly one of the features `ssr` (the server) and
//! `hydrate` (the browser's wasm bundle). See `docs/web.md` of the repository.

mod chat;
mod model;
mod workflow;

#[cfg(feature = "hydrate")]
mod client;
#[cfg(feature = "ssr")]
mod server;

pub use chat::MiyabiChat;
pub use model::{
    ApprovalRequest, ChatMessage, MiyabiApi, RunResult, RunView, StepView, Waiting, encode_segment,
};
#[cfg(feature = "ssr")]
pub use server::{MiyabiEngine, chat_events, provide_engine};
pub use workflow::{MastraWorkflow, MiyabiWorkflow};

#[cfg(all(feature = "ssr", feature = "hydrate"))]
compile_error!(
    "miyabi-leptos: the features `ssr` and `hydrate` must not be enabled together (build the server with `ssr`, the wasm bundle with `hydrate`)"
);
