//! Human approval gates: a workflow step that waits, durably, for people to approve, reject
//! or edit-and-approve what it shows them — for a minute or for a week.
//!
//! - [`ApprovalGate`] is the step (added with [`crate::Workflow::await_approval`]): a title,
//!   a summary, the data to review, links, approvers (`alice`, `team:leads`), a [`Policy`]
//!   (any, all, a quorum), a deadline with an outcome ([`OnTimeout`]: reject, approve or
//!   escalate) and notifiers ([`slack`], [`discord`], [`webhook`]).
//! - [`Approvals`] (from [`crate::Engine::approvals`]) lists inboxes, records decisions with
//!   compare-and-set (exactly one terminal decision per gate), and keeps the audit trail.
//! - A worker in every engine applies passed deadlines (also ones that passed while no
//!   process ran), hands decided gates to their runs, and sends notifications from an outbox
//!   written in the same transaction as the gate.
//!
//! The gate's output is the decision: `{"status", "approved", "data", "comment",
//! "decided_by", "votes", "timed_out"}`, where `data` is the reviewed data as approved
//! (edited, if an approver edited it).

mod error;
mod gate;
mod notify;
mod notify_registry;
mod service;
mod types;

pub use error::ApprovalError;
pub use gate::ApprovalGate;
pub(crate) use gate::{gate_from_suspension, is_gate_payload};
pub use notify::*;
pub use service::{Approvals, DEADLINE_ACTOR, TickReport, gate_link};
pub use types::{
    Approval, ApprovalFilter, ApprovalStatus, Approver, AuditFilter, AuditRecord, Decision,
    DecisionAction, Delivery, DeliveryStatus, Escalate, GateUpdate, NewGate, OnTimeout, Policy,
    Quorum, Vote,
};
