//! Names of Image Builder resources and references to them: a bare name,
//! `name/x.y.z[/N]`, or an ARN `arn:aws:imagebuilder:<region>:<account>:<type>/<name>/<x.y.z>[/N]`.

use autopatch_model::SemanticVersion;

/// Whether `text` is a resource name: letters, digits, `-` and `_`, non-empty.
/// The rule for component, recipe and pipeline names (and the CLI's flags
/// that give one).
pub fn is_name(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The message for a bad name.
pub(crate) fn name_error(what: &str, text: &str) -> String {
    format!("found the {what} {text:?}; expected a name made of letters, digits, `-` and `_`")
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
    /// `None`: the latest version (a bare name, or `x.x.x` in an ARN).
    pub(crate) version: Option<SemanticVersion>,
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
        None => None,
        Some("x.x.x") if from_arn => None,
        Some(version) => Some(version.parse::<SemanticVersion>().map_err(|error| {
            format!("found the version {version:?} in {text:?}; expected x.y.z: {}", error.reason)
        })?),
    };
    let build = match build_text {
        None => None,
        Some(build_text) => {
            Some(build_text.parse::<u32>().ok().filter(|_| is_digits(build_text)).ok_or_else(
                || format!("found the build {build_text:?} in {text:?}; expected a build number"),
            )?)
        }
    };
    Ok(VersionedName { name: name.to_owned(), version, build })
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
            Ok(name) => {
                let version =
                    name.version.map_or("latest".to_owned(), |version| version.to_string());
                format!("{} {version} {:?}", name.name, name.build)
            }
            Err(message) => message,
        };
        expect.assert_eq(&result);
    }

    #[test]
    fn forms() {
        check("UpdateOS", BuildPart::Optional, expect!["UpdateOS latest None"]);
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
            expect!["update-linux latest None"],
        );
    }

    #[test]
    fn errors() {
        check(
            "UpdateOS/1.0",
            BuildPart::Optional,
            expect![[
                r#"found the version "1.0" in "UpdateOS/1.0"; expected x.y.z: expected three numbers separated by dots, like 1.0.0"#
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
            expect![[r#"found the build "x" in "a/1.0.0/x"; expected a build number"#]],
        );
    }
}
