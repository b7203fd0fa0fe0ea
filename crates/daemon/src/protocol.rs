//! The wire protocol both ends agree on: where the socket is, how a request
//! names its operation, the error body, and the daemon's own operations
//! (`autopatch/Ping`, `autopatch/Shutdown`).
//!
//! A request is `POST /<service>/<Operation>` with a JSON body in AWS's
//! request shape; the answer is 200 with the JSON response shape, or the
//! error's status with `{"Error": {"Code": ..., "Message": ...}}`.

use std::path::{Path, PathBuf};

use autopatch_stacks::api::ApiError;
use serde::{Deserialize, Serialize};

/// The socket's file name in the state directory.
pub const SOCKET_FILE: &str = "autopatch.sock";
/// The lock file a running daemon holds (never removed).
pub const LOCK_FILE: &str = "autopatch.lock";
/// The running daemon's process id, while it runs.
pub const PID_FILE: &str = "autopatch.pid";
/// The service name of the daemon's own operations.
pub const DAEMON_SERVICE: &str = "autopatch";
/// The longest request body the daemon reads.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;

/// `<state_dir>/autopatch.sock`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_FILE)
}

/// `autopatch/Ping`'s answer: who is serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PingOutput {
    /// autopatch's version.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
    pub state_dir: String,
    /// The unix socket it serves on.
    pub socket: String,
    /// The loopback TCP address it also serves on (`--listen`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// The container engine it drives (`unix:///run/podman/podman.sock`).
    pub engine_endpoint: String,
    /// What recovery after a restart could not bring back yet (a load
    /// balancer whose port another process holds, say), each naming the
    /// stack and resource and why; the daemon keeps trying.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Which local port each load balancer listener gets (`free` or
    /// `template`, as `--listener-ports` says), when the operations served
    /// have load balancers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_ports: Option<String>,
}

/// `autopatch/Shutdown`'s answer: the process that is stopping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ShutdownOutput {
    pub pid: u32,
}

/// The error body: `{"Error": {"Code": ..., "Message": ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody {
    pub error: ApiError,
}

/// Splits a request path `/<service>/<Operation>` into its two names; `None`
/// for any other shape.
pub fn parse_route(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (service, operation) = rest.split_once('/')?;
    let named = |name: &str| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    (named(service) && named(operation)).then_some((service, operation))
}

/// Whether an operation only reads (`Describe*`, `List*`, `Get*`, `Ping`):
/// the daemon logs those only when they fail.
pub fn is_read_only(operation: &str) -> bool {
    ["Describe", "List", "Get"].iter().any(|prefix| operation.starts_with(prefix))
        || operation == "Ping"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_two_names() {
        assert_eq!(
            parse_route("/cloudformation/ListStacks"),
            Some(("cloudformation", "ListStacks"))
        );
        assert_eq!(
            parse_route("/elasticloadbalancingv2/DescribeTargetHealth"),
            Some(("elasticloadbalancingv2", "DescribeTargetHealth"))
        );
        for bad in
            ["", "/", "/cloudformation", "/cloudformation/", "//ListStacks", "/a/b/c", "/a/b%20"]
        {
            assert_eq!(parse_route(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn reads_are_told_from_changes() {
        assert!(is_read_only("DescribeStackEvents"));
        assert!(is_read_only("ListStacks"));
        assert!(is_read_only("Ping"));
        assert!(!is_read_only("CreateStack"));
        assert!(!is_read_only("Shutdown"));
    }
}
