//! Keys of Image Builder's `CreateImageRecipe` and `CreateImagePipeline`
//! requests that have no local effect: tags, EC2 settings (block devices,
//! user data), ARNs of resources that exist only on AWS (infrastructure and
//! distribution configurations), ECR scanning, CloudWatch logging.
//!
//! They are accepted so that the same files run locally and on AWS. Their
//! documented shape is checked where that is cheap (types, lengths, allowed
//! values, the ARN's resource type), so a file AWS would refuse is refused
//! here too, at the value that is wrong; their values are then dropped.

use std::ops::RangeInclusive;

use crate::diagnostic::Reporter;
use crate::yaml::{MappingReader, Node};

/// AWS's limit on the tags of one resource.
const MAX_TAGS: usize = 50;

/// A string of `length` characters, else reported (a missing or wrongly
/// typed value is reported by `expect_string`).
pub(crate) fn string(
    node: &Node,
    key: &str,
    length: RangeInclusive<usize>,
    reporter: &mut Reporter,
) -> Option<String> {
    let text = node.expect_string(reporter)?;
    let count = text.chars().count();
    if !length.contains(&count) {
        reporter.error(
            node.span,
            format!(
                "found {key} of {count} characters; expected {} to {} characters",
                length.start(),
                length.end()
            ),
        );
        return None;
    }
    Some(text.to_owned())
}

/// A boolean, reported if it is not one.
pub(crate) fn boolean(node: &Node, reporter: &mut Reporter) {
    node.expect_bool(reporter);
}

/// An integer in `range`, else `None` after reporting.
pub(crate) fn integer(
    node: &Node,
    key: &str,
    range: RangeInclusive<i64>,
    reporter: &mut Reporter,
) -> Option<i64> {
    let value = node.expect_integer(reporter)?;
    if range.contains(&value) {
        Some(value)
    } else {
        let (low, high) = (range.start(), range.end());
        let expected = if *high >= i64::from(u32::MAX) {
            format!("an integer of at least {low}")
        } else {
            format!("an integer from {low} to {high}")
        };
        reporter.error(node.span, format!("found {key} {value}; expected {expected}"));
        None
    }
}

/// One of `allowed`, else reported.
fn one_of(node: &Node, key: &str, allowed: &[&str], reporter: &mut Reporter) {
    let Some(text) = node.expect_string(reporter) else { return };
    if !allowed.contains(&text) {
        reporter.error(
            node.span,
            format!("found {key} {text:?}; expected one of {}", allowed.join(", ")),
        );
    }
}

/// A sequence of strings with `count` items.
fn strings(node: &Node, key: &str, count: RangeInclusive<usize>, reporter: &mut Reporter) {
    let Some(items) = node.expect_sequence(reporter) else { return };
    if !count.contains(&items.len()) {
        reporter.error(
            node.span,
            format!(
                "found {} items in {key}; expected {} to {}",
                items.len(),
                count.start(),
                count.end()
            ),
        );
    }
    for item in items {
        item.expect_string(reporter);
    }
}

/// Tags (`tags`, `amiTags`, `imageTags`): a mapping of at most 50 string
/// keys of 1 to 128 characters, not starting with `aws:` (AWS keeps those),
/// to string values of at most 256 characters.
pub(crate) fn tags(node: &Node, key: &str, reporter: &mut Reporter) {
    let Some(entries) = node.as_mapping().filter(|_| node.tag.is_none()) else {
        reporter.error(
            node.span,
            format!("expected a mapping of tag names to values, found {}", node.describe()),
        );
        return;
    };
    if entries.len() > MAX_TAGS {
        reporter.error(
            node.span,
            format!("found {} tags in {key}; expected at most {MAX_TAGS}", entries.len()),
        );
    }
    for (name, value) in entries {
        if let Some(text) = name.expect_string(reporter) {
            let count = text.chars().count();
            if !(1..=128).contains(&count) {
                reporter.error(
                    name.span,
                    format!("found a tag name of {count} characters; expected 1 to 128"),
                );
            } else if text.to_ascii_lowercase().starts_with("aws:") {
                reporter.error(
                    name.span,
                    format!("found the tag name {text:?}; expected a name that does not start with `aws:`, which AWS keeps for itself"),
                );
            }
        }
        if let Some(text) = value.expect_string(reporter)
            && text.chars().count() > 256
        {
            reporter.error(
                value.span,
                format!(
                    "found a tag value of {} characters; expected at most 256",
                    text.chars().count()
                ),
            );
        }
    }
}

/// The ARN of an Image Builder resource of `resource_type` that exists only
/// on AWS: `arn:<partition>:imagebuilder:<region>:<account>:<type>/<name>`.
pub(crate) fn resource_arn(node: &Node, key: &str, resource_type: &str, reporter: &mut Reporter) {
    let Some(text) = node.expect_string(reporter) else { return };
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    let valid = match parts[..] {
        ["arn", partition, "imagebuilder", region, account, resource] => {
            partition.starts_with("aws")
                && !region.is_empty()
                && !account.is_empty()
                && resource
                    .strip_prefix(resource_type)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .is_some_and(|name| {
                        !name.is_empty()
                            && name.bytes().all(|b| {
                                b.is_ascii_lowercase()
                                    || b.is_ascii_digit()
                                    || b == b'-'
                                    || b == b'_'
                            })
                    })
        }
        _ => false,
    };
    if !valid {
        reporter.error(
            node.span,
            format!(
                "found the {key} {text:?}; expected arn:aws:imagebuilder:<region>:<account>:{resource_type}/<name> (lowercase)"
            ),
        );
    }
}

/// `clientToken`: 1 to 36 characters. Registering is idempotent anyway.
pub(crate) fn client_token(node: &Node, reporter: &mut Reporter) {
    string(node, "clientToken", 1..=36, reporter);
}

/// A recipe's `blockDeviceMappings`: EC2 block devices of the build
/// instance.
pub(crate) fn block_device_mappings(node: &Node, reporter: &mut Reporter) {
    let Some(items) = node.expect_sequence(reporter) else { return };
    for item in items {
        let Some(mut map) = MappingReader::new(item, reporter) else { continue };
        if let Some(node) = map.optional("deviceName") {
            string(node, "deviceName", 1..=1024, reporter);
        }
        if let Some(node) = map.optional("noDevice") {
            string(node, "noDevice", 0..=1024, reporter);
        }
        if let Some(node) = map.optional("virtualName") {
            string(node, "virtualName", 1..=1024, reporter);
        }
        if let Some(node) = map.optional("ebs") {
            ebs(node, reporter);
        }
        map.finish(reporter);
    }
}

fn ebs(node: &Node, reporter: &mut Reporter) {
    let Some(mut map) = MappingReader::new(node, reporter) else { return };
    for key in ["deleteOnTermination", "encrypted"] {
        if let Some(node) = map.optional(key) {
            boolean(node, reporter);
        }
    }
    if let Some(node) = map.optional("iops") {
        integer(node, "iops", 100..=64000, reporter);
    }
    for key in ["kmsKeyId", "snapshotId"] {
        if let Some(node) = map.optional(key) {
            string(node, key, 1..=1024, reporter);
        }
    }
    if let Some(node) = map.optional("throughput") {
        integer(node, "throughput", 125..=1000, reporter);
    }
    if let Some(node) = map.optional("volumeSize") {
        integer(node, "volumeSize", 1..=16000, reporter);
    }
    if let Some(node) = map.optional("volumeType") {
        one_of(
            node,
            "volumeType",
            &["standard", "io1", "io2", "gp2", "gp3", "sc1", "st1"],
            reporter,
        );
    }
    map.finish(reporter);
}

/// A recipe's `additionalInstanceConfiguration`: the SSM agent and the user
/// data of the build instance.
pub(crate) fn additional_instance_configuration(node: &Node, reporter: &mut Reporter) {
    let Some(mut map) = MappingReader::new(node, reporter) else { return };
    if let Some(node) = map.optional("systemsManagerAgent")
        && let Some(mut agent) = MappingReader::new(node, reporter)
    {
        if let Some(node) = agent.optional("uninstallAfterBuild") {
            boolean(node, reporter);
        }
        agent.finish(reporter);
    }
    if let Some(node) = map.optional("userDataOverride")
        && let Some(text) = string(node, "userDataOverride", 1..=21847, reporter)
    {
        use base64::Engine as _;
        if base64::engine::general_purpose::STANDARD.decode(&text).is_err() {
            reporter.error(
                node.span,
                "found userDataOverride that is not base64; expected the user data encoded in base64, as AWS requires",
            );
        }
    }
    map.finish(reporter);
}

/// A recipe's `amiWatermarks`: 1 to 5 names.
pub(crate) fn ami_watermarks(node: &Node, reporter: &mut Reporter) {
    strings(node, "amiWatermarks", 1..=5, reporter);
}

/// A pipeline's `imageScanningConfiguration`: ECR scanning of container
/// images.
pub(crate) fn image_scanning_configuration(node: &Node, reporter: &mut Reporter) {
    let Some(mut map) = MappingReader::new(node, reporter) else { return };
    if let Some(node) = map.optional("imageScanningEnabled") {
        boolean(node, reporter);
    }
    if let Some(node) = map.optional("ecrConfiguration")
        && let Some(mut ecr) = MappingReader::new(node, reporter)
    {
        if let Some(node) = ecr.optional("repositoryName") {
            string(node, "repositoryName", 1..=1024, reporter);
        }
        if let Some(node) = ecr.optional("containerTags") {
            strings(node, "containerTags", 0..=usize::MAX, reporter);
        }
        ecr.finish(reporter);
    }
    map.finish(reporter);
}

/// A pipeline's `loggingConfiguration`: CloudWatch log group names.
pub(crate) fn logging_configuration(node: &Node, reporter: &mut Reporter) {
    let Some(mut map) = MappingReader::new(node, reporter) else { return };
    for key in ["imageLogGroupName", "pipelineLogGroupName"] {
        if let Some(node) = map.optional(key) {
            string(node, key, 1..=512, reporter);
        }
    }
    map.finish(reporter);
}

/// A pipeline's `executionRole`: an IAM role name or ARN.
pub(crate) fn execution_role(node: &Node, reporter: &mut Reporter) {
    string(node, "executionRole", 1..=2048, reporter);
}

/// `schedule.autoDisablePolicy`: how many scheduled runs fail in a row
/// before AWS disables the pipeline.
pub(crate) fn auto_disable_policy(node: &Node, reporter: &mut Reporter) {
    let Some(mut map) = MappingReader::new(node, reporter) else { return };
    if let Some(node) = map.required("failureCount", reporter) {
        integer(node, "failureCount", 1..=10, reporter);
    }
    map.finish(reporter);
}

/// A pipeline's `workflows`. autopatch runs Image Builder's default
/// workflows (build, then test when `imageTestsConfiguration` enables it),
/// so the entries may name only the AWS-managed `build-image` and
/// `test-image` workflows; any other workflow would change what a build
/// does, and is refused.
pub(crate) fn workflows(node: &Node, reporter: &mut Reporter) {
    let Some(items) = node.expect_sequence(reporter) else { return };
    for item in items {
        let Some(mut map) = MappingReader::new(item, reporter) else { continue };
        if let Some(node) = map.required("workflowArn", reporter) {
            workflow_arn(node, reporter);
        }
        if let Some(node) = map.optional("onFailure") {
            one_of(node, "onFailure", &["CONTINUE", "ABORT"], reporter);
        }
        if let Some(node) = map.optional("parallelGroup") {
            string(node, "parallelGroup", 1..=100, reporter);
        }
        if let Some(node) = map.optional("parameters")
            && let Some(parameters) = node.expect_sequence(reporter)
        {
            for parameter in parameters {
                let Some(mut entry) = MappingReader::new(parameter, reporter) else { continue };
                if let Some(node) = entry.required("name", reporter) {
                    string(node, "a workflow parameter name", 1..=128, reporter);
                }
                if let Some(node) = entry.required("value", reporter) {
                    strings(node, "value", 0..=usize::MAX, reporter);
                }
                entry.finish(reporter);
            }
        }
        map.finish(reporter);
    }
}

/// The workflows autopatch runs, as `<type>/<name>` in an AWS-managed
/// workflow ARN.
const DEFAULT_WORKFLOWS: [&str; 2] = ["build/build-image", "test/test-image"];

fn workflow_arn(node: &Node, reporter: &mut Reporter) {
    let Some(text) = node.expect_string(reporter) else { return };
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    let workflow = match parts[..] {
        ["arn", partition, "imagebuilder", _region, "aws", resource]
            if partition.starts_with("aws") =>
        {
            resource.strip_prefix("workflow/")
        }
        _ => None,
    };
    let default = workflow.is_some_and(|workflow| {
        DEFAULT_WORKFLOWS.iter().any(|name| {
            workflow.strip_prefix(name).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    });
    if !default {
        reporter.error(
            node.span,
            format!(
                "found the workflow {text:?}; expected Image Builder's build-image or test-image workflow (arn:aws:imagebuilder:<region>:aws:workflow/build/build-image/x.x.x): autopatch runs only its default build and test"
            ),
        );
    }
}
