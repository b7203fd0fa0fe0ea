//! Names of Image Builder resources and references to them: a bare name,
//! `name/<version>[/N]`, or an ARN
//! `arn:aws:imagebuilder:<region>:<account>:<type>/<name>/<version>[/N]`,
//! where `<version>` is a version `x.y.z` or one of Image Builder's version
//! filters (`x.x.x`, `1.x.x`, `1.2.x`).

use std::fmt;

use autopatch_model::{ImageVersion, SemanticVersion};

/// Whether `text` is a resource name: letters, digits, `-` and `_`, non-empty.
/// The rule for component, recipe and pipeline names (and the CLI's flags
/// that give one).
pub fn is_name(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The message for a bad name: `what` names what it is (`recipe name`,
/// `component name`...), `text` is the name found.
pub fn name_error(what: &str, text: &str) -> String {
    format!("found the {what} {text:?}; expected a name made of letters, digits, `-` and `_`")
}

/// The version a reference asks for: a version, or one of Image Builder's
/// filters, where `x` stands for any number and every part after the first
/// `x` is an `x` too (`x.2.x` and `1.x.3` are not filters). A filter selects
/// the highest registered version it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionFilter {
    /// `x.x.x`, or no version at all: any version.
    Any,
    /// `1.x.x`: any version with that major version.
    Major(u32),
    /// `1.2.x`: any version with that major and minor version.
    Minor(u32, u32),
    /// `1.2.3`: that version.
    Exact(SemanticVersion),
}

impl VersionFilter {
    /// Whether `version` is one the filter selects.
    pub fn matches(self, version: SemanticVersion) -> bool {
        match self {
            VersionFilter::Any => true,
            VersionFilter::Major(major) => version.major == major,
            VersionFilter::Minor(major, minor) => version.major == major && version.minor == minor,
            VersionFilter::Exact(exact) => version == exact,
        }
    }

    /// The version, when the filter names exactly one.
    pub fn exact(self) -> Option<SemanticVersion> {
        match self {
            VersionFilter::Exact(version) => Some(version),
            _ => None,
        }
    }

    /// Parses `x.y.z`, `x.x.x`, `1.x.x` or `1.2.x`; the error is the reason.
    ///
    /// # Errors
    /// Returns why `text` is neither a version nor a filter.
    pub fn parse(text: &str) -> Result<VersionFilter, String> {
        let parts: Vec<&str> = text.split('.').collect();
        let Some(first_x) = parts.iter().position(|part| *part == "x") else {
            return text
                .parse::<SemanticVersion>()
                .map(VersionFilter::Exact)
                .map_err(|error| error.reason.to_owned());
        };
        if parts.len() != 3 {
            return Err("expected three parts separated by dots, like 1.0.0 or 1.x.x".to_owned());
        }
        if parts[first_x..].iter().any(|part| *part != "x") {
            return Err(
                "every part after the first x must be x too: x.x.x, 1.x.x or 1.2.x".to_owned()
            );
        }
        // The numbers before the first `x` follow the version rules.
        let zeroed: Vec<&str> =
            parts.iter().map(|part| if *part == "x" { "0" } else { part }).collect();
        let version =
            zeroed.join(".").parse::<SemanticVersion>().map_err(|error| error.reason.to_owned())?;
        Ok(match first_x {
            0 => VersionFilter::Any,
            1 => VersionFilter::Major(version.major),
            _ => VersionFilter::Minor(version.major, version.minor),
        })
    }
}

impl fmt::Display for VersionFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionFilter::Any => f.write_str("x.x.x"),
            VersionFilter::Major(major) => write!(f, "{major}.x.x"),
            VersionFilter::Minor(major, minor) => write!(f, "{major}.{minor}.x"),
            VersionFilter::Exact(version) => write!(f, "{version}"),
        }
    }
}

/// Whether a reference may, must or must not end with a build number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BuildPart {
    Forbidden,
    Optional,
}

/// What a reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VersionedName {
    pub(crate) name: String,
    /// [`VersionFilter::Any`] for a bare name.
    pub(crate) version: VersionFilter,
    /// Only after an exact version.
    pub(crate) build: Option<u32>,
}

/// Parses a reference to an Image Builder resource of type `resource_type`
/// (`component`, `image-recipe`...).
pub(crate) fn parse_reference(
    text: &str,
    resource_type: &str,
    build: BuildPart,
) -> Result<VersionedName, String> {
    let build_shape = if build == BuildPart::Optional { "[/<build>]" } else { "" };
    let (path, from_arn) = if text.starts_with("arn:") {
        let arn_shape = format!(
            "arn:aws:imagebuilder:<region>:<account>:{resource_type}/<name>/<x.y.z>{build_shape}"
        );
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let resource = match parts[..] {
            ["arn", partition, "imagebuilder", _region, account, resource]
                if !partition.is_empty() && !account.is_empty() =>
            {
                resource.strip_prefix(resource_type).and_then(|rest| rest.strip_prefix('/'))
            }
            _ => None,
        };
        match resource {
            Some(path) => (path, true),
            None => return Err(format!("found the ARN {text:?}; expected {arn_shape}")),
        }
    } else {
        (text, false)
    };
    let parts: Vec<&str> = path.split('/').collect();
    let shape =
        format!("<name>, <name>/<x.y.z>{build_shape} or an Image Builder {resource_type} ARN");
    let (name, version, build_text) = match (parts.as_slice(), build) {
        (&[name], _) if !from_arn => (name, None, None),
        (&[name, version], _) => (name, Some(version), None),
        (&[name, version, build_text], BuildPart::Optional) => {
            (name, Some(version), Some(build_text))
        }
        _ => return Err(format!("found {text:?}; expected {shape}")),
    };
    if !is_name(name) {
        return Err(name_error(&format!("{resource_type} name"), name));
    }
    let version = match version {
        None => VersionFilter::Any,
        Some(version) => version_filter(version, text)?,
    };
    let build = build_text.map(|build_text| build_number(build_text, version, text)).transpose()?;
    Ok(VersionedName { name: name.to_owned(), version, build })
}

/// The version or filter `version` of the reference `text`.
fn version_filter(version: &str, text: &str) -> Result<VersionFilter, String> {
    VersionFilter::parse(version).map_err(|reason| {
        format!(
            "found the version {version:?} in {text:?}; expected x.y.z or a version filter x.x.x, 1.x.x or 1.2.x: {reason}"
        )
    })
}

/// The build number `build_text` of the reference `text`: a positive
/// number, after an exact version only.
fn build_number(build_text: &str, version: VersionFilter, text: &str) -> Result<u32, String> {
    if version.exact().is_none() {
        return Err(format!(
            "found a build number after the version filter {version} in {text:?}; expected a build number only after a version x.y.z"
        ));
    }
    build_text.parse::<u32>().ok().filter(|number| is_digits(build_text) && *number > 0).ok_or_else(
        || format!("found the build {build_text:?} in {text:?}; expected a build number from 1"),
    )
}

/// A reference to an image autopatch registered: its name, the version it
/// asks for and, after an exact version, the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    pub name: String,
    pub version: VersionFilter,
    pub build: Option<u32>,
}

impl ImageReference {
    /// The image version, when the reference names one build.
    pub fn image_version(&self) -> Option<ImageVersion> {
        Some(ImageVersion {
            recipe: self.name.clone(),
            version: self.version.exact()?,
            build: self.build?,
        })
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.version)?;
        if let Some(build) = self.build {
            write!(f, "/{build}")?;
        }
        Ok(())
    }
}

/// Reads `text` as a reference to a registered image: `name`,
/// `name/<version or filter>`, `name/x.y.z/N`, or an Image Builder image ARN
/// of those. `Ok(None)`: `text` is not shaped like one (an engine reference
/// such as `docker.io/library/debian:12`, or an image id).
///
/// # Errors
/// Returns why `text`, shaped like an image reference (a name, then a
/// version-like part), is not one: a version that is neither `x.y.z` nor a
/// filter, a build number that is not a positive number or follows a filter.
pub fn parse_image_reference(text: &str) -> Result<Option<ImageReference>, String> {
    if text.starts_with("arn:") {
        let found = parse_reference(text, "image", BuildPart::Optional)?;
        return Ok(Some(ImageReference {
            name: found.name,
            version: found.version,
            build: found.build,
        }));
    }
    let parts: Vec<&str> = text.split('/').collect();
    let (name, version, build_text) = match parts[..] {
        [name] => (name, None, None),
        [name, version] => (name, Some(version), None),
        [name, version, build] => (name, Some(version), Some(build)),
        _ => return Ok(None),
    };
    if !is_name(name) || version.is_some_and(|version| !looks_like_version(version)) {
        return Ok(None);
    }
    let version = match version {
        None => VersionFilter::Any,
        Some(version) => version_filter(version, text)?,
    };
    let build = build_text.map(|build_text| build_number(build_text, version, text)).transpose()?;
    Ok(Some(ImageReference { name: name.to_owned(), version, build }))
}

/// Whether `text` is meant as a version or filter (digits, dots and `x`,
/// with a dot), not as part of an engine reference.
fn looks_like_version(text: &str) -> bool {
    text.contains('.') && text.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'x')
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(text: &str, build: BuildPart, expect: Expect) {
        let result = match parse_reference(text, "component", build) {
            Ok(name) => format!("{} {} {:?}", name.name, name.version, name.build),
            Err(message) => message,
        };
        expect.assert_eq(&result);
    }

    #[test]
    fn forms() {
        check("UpdateOS", BuildPart::Optional, expect!["UpdateOS x.x.x None"]);
        check("UpdateOS/1.0.0", BuildPart::Optional, expect!["UpdateOS 1.0.0 None"]);
        check("UpdateOS/1.0.0/3", BuildPart::Optional, expect!["UpdateOS 1.0.0 Some(3)"]);
        check(
            "arn:aws:imagebuilder:eu-west-1:123456789012:component/update-os/1.2.3/1",
            BuildPart::Optional,
            expect!["update-os 1.2.3 Some(1)"],
        );
        check(
            "arn:aws:imagebuilder:us-east-1:aws:component/update-linux/x.x.x",
            BuildPart::Optional,
            expect!["update-linux x.x.x None"],
        );
    }

    /// Image Builder's filters, the same in every form: a bare name with a
    /// version, and an ARN.
    #[test]
    fn version_filters_are_the_same_in_every_form() {
        let forms = |version: &str| {
            [
                format!("qasleep/{version}"),
                format!("arn:aws:imagebuilder:us-east-1:aws:component/qasleep/{version}"),
            ]
            .map(|text| match parse_reference(&text, "component", BuildPart::Optional) {
                Ok(name) => format!("{} {:?}", name.version, name.version),
                Err(message) => message,
            })
            .join(" | ")
        };
        let actual = ["x.x.x", "1.x.x", "1.2.x", "1.2.3", "x.2.x", "1.x.3", "x.x", "01.x.x"]
            .map(forms)
            .join("\n");
        expect![[r#"
            x.x.x Any | x.x.x Any
            1.x.x Major(1) | 1.x.x Major(1)
            1.2.x Minor(1, 2) | 1.2.x Minor(1, 2)
            1.2.3 Exact(SemanticVersion { major: 1, minor: 2, patch: 3 }) | 1.2.3 Exact(SemanticVersion { major: 1, minor: 2, patch: 3 })
            found the version "x.2.x" in "qasleep/x.2.x"; expected x.y.z or a version filter x.x.x, 1.x.x or 1.2.x: every part after the first x must be x too: x.x.x, 1.x.x or 1.2.x | found the version "x.2.x" in "arn:aws:imagebuilder:us-east-1:aws:component/qasleep/x.2.x"; expected x.y.z or a version filter x.x.x, 1.x.x or 1.2.x: every part after the first x must be x too: x.x.x, 1.x.x or 1.2.x
            found the version "1.x.3" in "qasleep/1.x.3"; expected x.y.z or a version filter x.x.x, 1.x.x or 1.2.x: every part after the first x must be x too: x.x.x, 1.x.x or 1.2.x | found the version "1.x.3" in "arn:aws:imagebuilder:us-east-1:aws:component/qasleep/1.x.3"; expected x.y.z or a version filter x.x.x, 1.x.x or 1.2.x: every part after the first x must be x too: x.x.x, 1.x.x or 1.2.x
            found the version "x.x" in "qasleep/x.x"; expected x.y.z or a version filter x.x.x, 1.x.x or 1.2.x: expected three parts separated by dots, like 1.0.0 or 1.x.x | found the version "x.x" in "arn:aws:imagebuilder:us-east-1:aws:component/qasleep/x.x"; expected x.y.z or a version filter x.x.x, 1.x.x or 1.2.x: expected three parts separated by dots, like 1.0.0 or 1.x.x
            found the version "01.x.x" in "qasleep/01.x.x"; expected x.y.z or a version filter x.x.x, 1.x.x or 1.2.x: a part must not have leading zeros | found the version "01.x.x" in "arn:aws:imagebuilder:us-east-1:aws:component/qasleep/01.x.x"; expected x.y.z or a version filter x.x.x, 1.x.x or 1.2.x: a part must not have leading zeros"#]]
        .assert_eq(&actual);
        let matching = |filter: &str| {
            let filter = VersionFilter::parse(filter).unwrap();
            ["1.0.0", "1.2.0", "1.2.7", "2.2.4"]
                .into_iter()
                .filter(|version| filter.matches(version.parse().unwrap()))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(matching("x.x.x"), "1.0.0,1.2.0,1.2.7,2.2.4");
        assert_eq!(matching("1.x.x"), "1.0.0,1.2.0,1.2.7");
        assert_eq!(matching("1.2.x"), "1.2.0,1.2.7");
        assert_eq!(matching("1.2.7"), "1.2.7");
    }

    #[test]
    fn errors() {
        check(
            "UpdateOS/1.0",
            BuildPart::Optional,
            expect![[
                r#"found the version "1.0" in "UpdateOS/1.0"; expected x.y.z or a version filter x.x.x, 1.x.x or 1.2.x: expected three numbers separated by dots, like 1.0.0"#
            ]],
        );
        check(
            "UpdateOS/1.0.0/3",
            BuildPart::Forbidden,
            expect![[
                r#"found "UpdateOS/1.0.0/3"; expected <name>, <name>/<x.y.z> or an Image Builder component ARN"#
            ]],
        );
        check(
            "Update OS",
            BuildPart::Optional,
            expect![[
                r#"found the component name "Update OS"; expected a name made of letters, digits, `-` and `_`"#
            ]],
        );
        check(
            "arn:aws:s3:::bucket/key",
            BuildPart::Optional,
            expect![[
                r#"found the ARN "arn:aws:s3:::bucket/key"; expected arn:aws:imagebuilder:<region>:<account>:component/<name>/<x.y.z>[/<build>]"#
            ]],
        );
        check(
            "arn:aws:imagebuilder:eu-west-1:1:component/a",
            BuildPart::Optional,
            expect![[
                r#"found "arn:aws:imagebuilder:eu-west-1:1:component/a"; expected <name>, <name>/<x.y.z>[/<build>] or an Image Builder component ARN"#
            ]],
        );
        check(
            "a/1.0.0/x",
            BuildPart::Optional,
            expect![[r#"found the build "x" in "a/1.0.0/x"; expected a build number from 1"#]],
        );
        check(
            "a/1.0.0/0",
            BuildPart::Optional,
            expect![[r#"found the build "0" in "a/1.0.0/0"; expected a build number from 1"#]],
        );
        check(
            "arn:aws:imagebuilder:us-east-1:aws:component/a/1.x.x/1",
            BuildPart::Optional,
            expect![[
                r#"found a build number after the version filter 1.x.x in "arn:aws:imagebuilder:us-east-1:aws:component/a/1.x.x/1"; expected a build number only after a version x.y.z"#
            ]],
        );
    }

    #[test]
    fn image_references() {
        let image = |text: &str| match parse_image_reference(text) {
            Ok(Some(reference)) => {
                format!("{reference} {:?}", reference.image_version().map(|v| v.to_string()))
            }
            Ok(None) => "engine reference".to_owned(),
            Err(message) => message,
        };
        let actual = [
            "golden",
            "golden/x.x.x",
            "golden/1.x.x",
            "golden/1.2.x",
            "golden/1.0.0",
            "golden/1.0.0/2",
            "arn:aws:imagebuilder:us-east-1:123456789012:image/golden/1.x.x",
            "arn:aws:imagebuilder:us-east-1:123456789012:image/golden/1.0.0/2",
            "docker.io/library/debian:12",
            "library/debian",
            "debian:12",
            "localhost/autopatch/golden:1.0.0-1",
            "golden/x.2.x",
            "golden/1.0/1",
            "golden/1.0.0/x",
            "golden/x.x.x/1",
        ]
        .map(image)
        .join("\n");
        expect![[r#"
            golden/x.x.x None
            golden/x.x.x None
            golden/1.x.x None
            golden/1.2.x None
            golden/1.0.0 None
            golden/1.0.0/2 Some("golden/1.0.0/2")
            golden/1.x.x None
            golden/1.0.0/2 Some("golden/1.0.0/2")
            engine reference
            engine reference
            engine reference
            engine reference
            found the version "x.2.x" in "golden/x.2.x"; expected x.y.z or a version filter x.x.x, 1.x.x or 1.2.x: every part after the first x must be x too: x.x.x, 1.x.x or 1.2.x
            found the version "1.0" in "golden/1.0/1"; expected x.y.z or a version filter x.x.x, 1.x.x or 1.2.x: expected three numbers separated by dots, like 1.0.0
            found the build "x" in "golden/1.0.0/x"; expected a build number from 1
            found a build number after the version filter x.x.x in "golden/x.x.x/1"; expected a build number only after a version x.y.z"#]]
        .assert_eq(&actual);
    }
}
