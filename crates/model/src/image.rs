//! Images and builds: the image version `recipe/x.y.z/N`, build ids, and the
//! Image Builder state names.

use std::fmt;
use std::str::FromStr;

use crate::version::{SemanticVersion, VersionError};

/// The identity of a published image: recipe name, recipe version, build number.
/// Displayed and parsed as `recipe/x.y.z/N`, like an Image Builder image build
/// version ARN's last three segments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageVersion {
    pub recipe: String,
    pub version: SemanticVersion,
    pub build: u32,
}

impl fmt::Display for ImageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.recipe, self.version, self.build)
    }
}

impl FromStr for ImageVersion {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<ImageVersion, VersionError> {
        let error = |reason| VersionError { text: text.to_owned(), reason };
        let mut parts = text.rsplitn(3, '/');
        let (Some(build), Some(version), Some(recipe)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(error("expected recipe/x.y.z/N"));
        };
        if recipe.is_empty() {
            return Err(error("the recipe name is empty"));
        }
        let build = build.parse().map_err(|_| error("the build number must be an integer"))?;
        Ok(ImageVersion { recipe: recipe.to_owned(), version: version.parse()?, build })
    }
}

/// A build's identifier (one pipeline execution).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BuildId(pub String);

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Image Builder's image states, with the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageState {
    Pending,
    Building,
    Testing,
    Available,
    Failed,
    Cancelled,
    Deleted,
}

impl ImageState {
    pub const ALL: [ImageState; 7] = [
        ImageState::Pending,
        ImageState::Building,
        ImageState::Testing,
        ImageState::Available,
        ImageState::Failed,
        ImageState::Cancelled,
        ImageState::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ImageState::Pending => "PENDING",
            ImageState::Building => "BUILDING",
            ImageState::Testing => "TESTING",
            ImageState::Available => "AVAILABLE",
            ImageState::Failed => "FAILED",
            ImageState::Cancelled => "CANCELLED",
            ImageState::Deleted => "DELETED",
        }
    }

    /// Whether no further transition can happen (waits stop here).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ImageState::Available
                | ImageState::Failed
                | ImageState::Cancelled
                | ImageState::Deleted
        )
    }
}

impl fmt::Display for ImageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImageState {
    type Err = String;

    fn from_str(text: &str) -> Result<ImageState, String> {
        ImageState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| format!("unknown image state {text:?}"))
    }
}

/// The outcome of one AWSTOE step or phase, as AWSTOE's detailed output names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepStatus {
    Pending,
    Running,
    Success,
    Failed,
    /// Failed, but `onFailure: Ignore` or `Continue` let the build go on.
    Ignored,
    /// Not run because an earlier step ended the phase.
    Skipped,
    Cancelled,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Success => "success",
            StepStatus::Failed => "failed",
            StepStatus::Ignored => "ignored",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_version_round_trips() {
        let version: ImageVersion = "webapp/1.2.3/4".parse().unwrap();
        assert_eq!(version.recipe, "webapp");
        assert_eq!(version.version, SemanticVersion::new(1, 2, 3));
        assert_eq!(version.build, 4);
        assert_eq!(version.to_string(), "webapp/1.2.3/4");
    }

    #[test]
    fn image_version_rejects_malformed() {
        assert!("webapp/1.2.3".parse::<ImageVersion>().is_err());
        assert!("/1.2.3/1".parse::<ImageVersion>().is_err());
        assert!("webapp/1.2/1".parse::<ImageVersion>().is_err());
        assert!("webapp/1.2.3/x".parse::<ImageVersion>().is_err());
    }

    #[test]
    fn states_round_trip_and_terminality() {
        for state in ImageState::ALL {
            assert_eq!(state.as_str().parse::<ImageState>().unwrap(), state);
        }
        assert!(!ImageState::Building.is_terminal());
        assert!(ImageState::Failed.is_terminal());
        assert!(ImageState::Available.is_terminal());
    }
}
