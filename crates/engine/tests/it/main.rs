//! Integration tests of `DockerEngine` against the real engine socket (Podman
//! here; `DOCKER_HOST` or the standard sockets pick it). Each test names its
//! objects uniquely and removes them even when it fails.

mod connect;
mod containers;
mod images;
mod support;
