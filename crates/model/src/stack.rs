//! CloudFormation's stack and resource status names.

use std::fmt;
use std::str::FromStr;

macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;

            fn from_str(text: &str) -> Result<Self, UnknownStatus> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|status| status.as_str() == text)
                    .ok_or_else(|| UnknownStatus(text.to_owned()))
            }
        }
    };
}

/// A status name that is not CloudFormation's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown status `{}`", self.0)
    }
}

impl std::error::Error for UnknownStatus {}

status_enum! {
    /// A stack's status (`StackStatus`), with CloudFormation's names.
    StackStatus {
        CreateInProgress => "CREATE_IN_PROGRESS",
        CreateFailed => "CREATE_FAILED",
        CreateComplete => "CREATE_COMPLETE",
        RollbackInProgress => "ROLLBACK_IN_PROGRESS",
        RollbackFailed => "ROLLBACK_FAILED",
        RollbackComplete => "ROLLBACK_COMPLETE",
        DeleteInProgress => "DELETE_IN_PROGRESS",
        DeleteFailed => "DELETE_FAILED",
        DeleteComplete => "DELETE_COMPLETE",
        UpdateInProgress => "UPDATE_IN_PROGRESS",
        UpdateCompleteCleanupInProgress => "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
        UpdateComplete => "UPDATE_COMPLETE",
        UpdateFailed => "UPDATE_FAILED",
        UpdateRollbackInProgress => "UPDATE_ROLLBACK_IN_PROGRESS",
        UpdateRollbackFailed => "UPDATE_ROLLBACK_FAILED",
        UpdateRollbackCompleteCleanupInProgress => "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
        UpdateRollbackComplete => "UPDATE_ROLLBACK_COMPLETE",
    }
}

impl StackStatus {
    /// Whether an operation is running (the status ends in `_IN_PROGRESS`).
    pub fn in_progress(self) -> bool {
        self.as_str().ends_with("_IN_PROGRESS")
    }

    /// Whether the stack's operation ended as asked (`CREATE_COMPLETE`,
    /// `UPDATE_COMPLETE`, `DELETE_COMPLETE`).
    pub fn succeeded(self) -> bool {
        matches!(
            self,
            StackStatus::CreateComplete | StackStatus::UpdateComplete | StackStatus::DeleteComplete
        )
    }

    /// Whether the stack's resources are up and its outputs and exports count
    /// (the states from which an update or delete may start).
    pub fn is_stable(self) -> bool {
        matches!(
            self,
            StackStatus::CreateComplete
                | StackStatus::UpdateComplete
                | StackStatus::UpdateRollbackComplete
                | StackStatus::RollbackComplete
                | StackStatus::CreateFailed
                | StackStatus::RollbackFailed
                | StackStatus::DeleteFailed
                | StackStatus::UpdateRollbackFailed
        )
    }
}

status_enum! {
    /// A resource's status (`ResourceStatus`), with CloudFormation's names.
    ResourceStatus {
        CreateInProgress => "CREATE_IN_PROGRESS",
        CreateFailed => "CREATE_FAILED",
        CreateComplete => "CREATE_COMPLETE",
        DeleteInProgress => "DELETE_IN_PROGRESS",
        DeleteFailed => "DELETE_FAILED",
        DeleteComplete => "DELETE_COMPLETE",
        DeleteSkipped => "DELETE_SKIPPED",
        UpdateInProgress => "UPDATE_IN_PROGRESS",
        UpdateFailed => "UPDATE_FAILED",
        UpdateComplete => "UPDATE_COMPLETE",
    }
}

impl ResourceStatus {
    /// Whether something exists (or may exist) that a rollback or delete
    /// has to remove.
    pub fn may_exist(self) -> bool {
        !matches!(self, ResourceStatus::DeleteComplete | ResourceStatus::DeleteSkipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for status in StackStatus::ALL {
            assert_eq!(status.as_str().parse::<StackStatus>(), Ok(*status));
        }
        for status in ResourceStatus::ALL {
            assert_eq!(status.as_str().parse::<ResourceStatus>(), Ok(*status));
        }
        assert_eq!("CREATE_DONE".parse::<StackStatus>(), Err(UnknownStatus("CREATE_DONE".into())));
    }

    #[test]
    fn in_progress_is_the_suffix() {
        assert!(StackStatus::UpdateCompleteCleanupInProgress.in_progress());
        assert!(!StackStatus::RollbackComplete.in_progress());
        assert!(StackStatus::DeleteComplete.succeeded());
        assert!(!StackStatus::RollbackComplete.succeeded());
    }
}
