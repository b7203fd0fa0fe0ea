//! Integration tests against a real container engine (Podman's Docker API):
//! instances from the golden test image run their user data, see their
//! metadata, signal through the shipped cfn-signal, are replaced when
//! stopped, are adopted by a restarted fleet, and leave nothing when their
//! group is deleted.

mod podman;
mod support;
