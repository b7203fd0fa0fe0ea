//! Integration tests of `DockerEngine` against the real engine socket (Podman
//! here; `DOCKER_HOST` or the standard sockets pick it). Each test names its
//! objects uniquely and removes them even when it fails. `stutter` alone talks
//! to a scripted stand-in, for faults the real engine makes only at random.

mod connect;
mod containers;
mod images;
mod stutter;
mod support;
