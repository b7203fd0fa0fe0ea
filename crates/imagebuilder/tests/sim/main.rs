//! Deterministic simulations of the image build lifecycle against the
//! recording `FakeEngine`: happy path, step failure policies, retries and
//! reboots, test-stage failures, cancellation, idempotent starts, recovery
//! of builds whose runner died, the "updates available" start condition,
//! what the evidence says about how an image was made,
//! registration diagnostics, and a fault injected at every engine call.
//!
//! No container engine, no network: the exec handler in [`harness`] plays a
//! small Debian system, and virtual time keeps runs reproducible.

mod harness;

mod faults;
mod lifecycle;
mod provenance;
mod recovery;
mod registration;
mod start_condition;
mod steps;
