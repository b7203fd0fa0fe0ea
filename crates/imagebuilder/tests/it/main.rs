//! Integration tests of the image pipeline against the real container
//! engine (Podman through its Docker-compatible socket), with real Debian
//! images. The golden image `localhost/autopatch-test/golden:bookworm` is
//! built once with mmdebstrap when missing and reused.

mod support;

mod bootstrap;
mod lab;
mod lifecycle;
mod local_repo;
mod parent_manifest;
mod recovery;
mod unreachable;
