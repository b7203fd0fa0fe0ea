//! Stacks, their resources and their events.
