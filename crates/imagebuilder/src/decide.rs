//! Pure decisions: what the AWSTOE step machine does after a step attempt
//! ends, and whether a pipeline start must build or may check for package
//! updates first (the start condition). No I/O, no clock: the callers feed
//! facts in and act on the answer, so every path is tested as a table.

use autopatch_documents::OnFailure;
use autopatch_model::StepStatus;
use autopatch_store::BuildComponentRow;

/// How one attempt of a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptOutcome {
    Succeeded,
    /// Exited with this code (not 0, not 194).
    Failed,
    /// Ran past `timeoutSeconds`.
    TimedOut,
    /// Exited 194: AWSTOE's "reboot, then run this step again".
    RebootRequested,
    /// The stage's container stopped running (killed, removed) during the
    /// attempt: nothing more can run in it.
    ContainerStopped,
}

/// What the executor does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepDecision {
    /// Run the step again (attempt number given, 1-based).
    Retry { attempt: u32 },
    /// Restart the container, then run the step again (same attempt).
    Reboot,
    /// The step is over with this status; go on to the next step.
    Continue { status: StepStatus },
    /// The step is over with this status and the document (and build) fails now.
    Abort { status: StepStatus },
}

/// At most this many reboots in one build, so a step that always exits 194
/// cannot loop forever.
pub(crate) const MAX_REBOOTS: u32 = 10;

/// Decides what follows attempt `attempt` (1-based) of a step.
pub(crate) fn after_attempt(
    outcome: AttemptOutcome,
    attempt: u32,
    max_attempts: u32,
    on_failure: OnFailure,
    reboots_so_far: u32,
) -> StepDecision {
    match outcome {
        AttemptOutcome::Succeeded => StepDecision::Continue { status: StepStatus::Success },
        // No retry, reboot or next step in a container that is gone,
        // whatever the step's maxAttempts and onFailure say.
        AttemptOutcome::ContainerStopped => StepDecision::Abort { status: StepStatus::Failed },
        AttemptOutcome::RebootRequested if reboots_so_far < MAX_REBOOTS => StepDecision::Reboot,
        AttemptOutcome::RebootRequested | AttemptOutcome::Failed | AttemptOutcome::TimedOut => {
            if attempt < max_attempts {
                return StepDecision::Retry { attempt: attempt + 1 };
            }
            match on_failure {
                OnFailure::Abort => StepDecision::Abort { status: StepStatus::Failed },
                // AWSTOE: Continue fails the step (and so the document) but
                // runs the remaining steps; Ignore does not count it at all.
                OnFailure::Continue => StepDecision::Continue { status: StepStatus::Failed },
                OnFailure::Ignore => StepDecision::Continue { status: StepStatus::Ignored },
            }
        }
    }
}

/// What an image was built from, or what a start would build from now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BuiltFrom<'a> {
    pub(crate) recipe_version: &'a str,
    pub(crate) parent_engine_image_id: Option<&'a str>,
    /// The component versions, in recipe order; `None` when they were not
    /// recorded (an image built before autopatch recorded them).
    pub(crate) components: Option<&'a [BuildComponentRow]>,
}

/// Something a start would build from that differs from what the
/// pipeline's latest image was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// The pipeline has no image yet.
    NoImage,
    RecipeVersion {
        from: String,
        to: String,
    },
    Parent {
        from: Option<String>,
        to: Option<String>,
    },
    /// A component's reference (a filter like `1.x.x`) resolves to another
    /// version or build: `from` and `to` are `version/build`.
    Component {
        name: String,
        from: String,
        to: String,
    },
    ComponentAdded {
        name: String,
        version: String,
    },
    ComponentRemoved {
        name: String,
        version: String,
    },
    /// The latest image's component versions are not recorded, so they
    /// cannot be compared.
    ComponentsNotRecorded,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let image = |id: &Option<String>| id.as_deref().map_or_else(|| "-".to_owned(), short_id);
        match self {
            Change::NoImage => write!(f, "the pipeline has no image yet"),
            Change::RecipeVersion { from, to } => write!(f, "recipe version {from} → {to}"),
            Change::Parent { from, to } => {
                write!(f, "parent image {} → {}", image(from), image(to))
            }
            Change::Component { name, from, to } => write!(f, "component {name} {from} → {to}"),
            Change::ComponentAdded { name, version } => {
                write!(f, "component {name} {version} added")
            }
            Change::ComponentRemoved { name, version } => {
                write!(f, "component {name} {version} removed")
            }
            Change::ComponentsNotRecorded => {
                write!(f, "the component versions the latest image was built from are not recorded")
            }
        }
    }
}

/// An engine image id as people read it: 12 hex digits, without `sha256:`.
fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// What a start under "only if updates are available" does; `I` is the
/// latest image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartDecision<I> {
    /// Build at once, because of these changes (never empty).
    Build { changes: Vec<Change> },
    /// The latest image was built from exactly what a build would use now:
    /// build only if it has package updates pending.
    CheckUpdates { latest: I },
}

/// Decides a start under "only if updates are available": build when
/// anything the pipeline's latest image (`I`, with what it was built from)
/// was built from (recipe version, parent image, component versions and
/// builds) differs from what a build would use now, else check that image
/// for pending package updates.
pub(crate) fn start_decision<I>(
    latest: Option<(I, BuiltFrom<'_>)>,
    now: BuiltFrom<'_>,
) -> StartDecision<I> {
    let Some((image, latest)) = latest else {
        return StartDecision::Build { changes: vec![Change::NoImage] };
    };
    let mut changes = Vec::new();
    if latest.recipe_version != now.recipe_version {
        changes.push(Change::RecipeVersion {
            from: latest.recipe_version.to_owned(),
            to: now.recipe_version.to_owned(),
        });
    }
    if latest.parent_engine_image_id.is_none()
        || latest.parent_engine_image_id != now.parent_engine_image_id
    {
        changes.push(Change::Parent {
            from: latest.parent_engine_image_id.map(str::to_owned),
            to: now.parent_engine_image_id.map(str::to_owned),
        });
    }
    match (latest.components, now.components) {
        (Some(before), Some(after)) => changes.extend(component_changes(before, after)),
        (None, _) => changes.push(Change::ComponentsNotRecorded),
        // What a build would run is always known.
        (Some(_), None) => {}
    }
    if changes.is_empty() {
        StartDecision::CheckUpdates { latest: image }
    } else {
        StartDecision::Build { changes }
    }
}

/// The component changes from `before` to `after`: each name's versions
/// compared in the order they appear (a recipe may name a component twice).
fn component_changes(before: &[BuildComponentRow], after: &[BuildComponentRow]) -> Vec<Change> {
    let mut names: Vec<&str> = Vec::new();
    for component in after.iter().chain(before) {
        if !names.contains(&component.name.as_str()) {
            names.push(&component.name);
        }
    }
    let versions = |list: &[BuildComponentRow], name: &str| -> Vec<String> {
        list.iter()
            .filter(|component| component.name == name)
            .map(|component| format!("{}/{}", component.version, component.build_number))
            .collect()
    };
    let mut changes = Vec::new();
    for name in names {
        let (from, to) = (versions(before, name), versions(after, name));
        for index in 0..from.len().max(to.len()) {
            let name = name.to_owned();
            match (from.get(index), to.get(index)) {
                (Some(from), Some(to)) if from != to => {
                    changes.push(Change::Component { name, from: from.clone(), to: to.clone() });
                }
                (None, Some(version)) => {
                    changes.push(Change::ComponentAdded { name, version: version.clone() });
                }
                (Some(version), None) => {
                    changes.push(Change::ComponentRemoved { name, version: version.clone() });
                }
                _ => {}
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use AttemptOutcome::*;

    #[test]
    fn decision_table() {
        let cases = [
            // (outcome, attempt, max, onFailure, reboots) -> decision
            (
                (Succeeded, 1, 1, OnFailure::Abort, 0),
                StepDecision::Continue { status: StepStatus::Success },
            ),
            (
                (Failed, 1, 1, OnFailure::Abort, 0),
                StepDecision::Abort { status: StepStatus::Failed },
            ),
            ((Failed, 1, 3, OnFailure::Abort, 0), StepDecision::Retry { attempt: 2 }),
            (
                (Failed, 3, 3, OnFailure::Abort, 0),
                StepDecision::Abort { status: StepStatus::Failed },
            ),
            ((TimedOut, 1, 2, OnFailure::Abort, 0), StepDecision::Retry { attempt: 2 }),
            (
                (TimedOut, 2, 2, OnFailure::Continue, 0),
                StepDecision::Continue { status: StepStatus::Failed },
            ),
            (
                (Failed, 1, 1, OnFailure::Ignore, 0),
                StepDecision::Continue { status: StepStatus::Ignored },
            ),
            ((RebootRequested, 1, 1, OnFailure::Abort, 0), StepDecision::Reboot),
            (
                (RebootRequested, 1, 1, OnFailure::Abort, MAX_REBOOTS),
                StepDecision::Abort { status: StepStatus::Failed },
            ),
            (
                (RebootRequested, 1, 2, OnFailure::Abort, MAX_REBOOTS),
                StepDecision::Retry { attempt: 2 },
            ),
            (
                (ContainerStopped, 1, 3, OnFailure::Ignore, 0),
                StepDecision::Abort { status: StepStatus::Failed },
            ),
        ];
        for ((outcome, attempt, max, on_failure, reboots), expected) in cases {
            assert_eq!(
                after_attempt(outcome, attempt, max, on_failure, reboots),
                expected,
                "{outcome:?} attempt {attempt}/{max} {on_failure:?} after {reboots} reboots"
            );
        }
    }

    fn components(list: &[(&str, &str, u32)]) -> Vec<BuildComponentRow> {
        list.iter()
            .map(|(name, version, build_number)| BuildComponentRow {
                name: (*name).to_owned(),
                version: (*version).to_owned(),
                build_number: *build_number,
            })
            .collect()
    }

    /// The decision, as text: `check updates`, or `build: change; change`.
    fn decide(latest: Option<BuiltFrom<'_>>, now: BuiltFrom<'_>) -> String {
        match start_decision(latest.map(|built_from| ("latest", built_from)), now) {
            StartDecision::CheckUpdates { latest } => format!("check updates of the {latest}"),
            StartDecision::Build { changes } => {
                let changes: Vec<String> = changes.iter().map(ToString::to_string).collect();
                format!("build: {}", changes.join("; "))
            }
        }
    }

    #[test]
    fn start_condition_table() {
        let built = components(&[("update-os", "1.0.0", 1), ("webapp-test", "1.0.0", 1)]);
        let latest = BuiltFrom {
            recipe_version: "1.0.0",
            parent_engine_image_id: Some("sha256:0123456789abcdef"),
            components: Some(&built),
        };
        let newer_update_os = components(&[("update-os", "1.0.1", 1), ("webapp-test", "1.0.0", 1)]);
        let other_build = components(&[("update-os", "1.0.0", 2), ("webapp-test", "1.0.0", 1)]);
        let added = components(&[
            ("update-os", "1.0.0", 1),
            ("webapp-test", "1.0.0", 1),
            ("update-os", "1.0.0", 1),
        ]);
        let removed = components(&[("update-os", "1.0.0", 1)]);
        let cases: [(&str, Option<BuiltFrom<'_>>, BuiltFrom<'_>, &str); 9] = [
            ("first image", None, latest, "build: the pipeline has no image yet"),
            ("nothing changed", Some(latest), latest, "check updates of the latest"),
            (
                "a newer component version matches the recipe's filter",
                Some(latest),
                BuiltFrom { components: Some(&newer_update_os), ..latest },
                "build: component update-os 1.0.0/1 → 1.0.1/1",
            ),
            (
                "another build of the same component version",
                Some(latest),
                BuiltFrom { components: Some(&other_build), ..latest },
                "build: component update-os 1.0.0/1 → 1.0.0/2",
            ),
            (
                "a component named once more",
                Some(latest),
                BuiltFrom { components: Some(&added), ..latest },
                "build: component update-os 1.0.0/1 added",
            ),
            (
                "a component no longer named",
                Some(latest),
                BuiltFrom { components: Some(&removed), ..latest },
                "build: component webapp-test 1.0.0/1 removed",
            ),
            (
                "new recipe version and parent",
                Some(latest),
                BuiltFrom {
                    recipe_version: "1.1.0",
                    parent_engine_image_id: Some("fedcba9876543210aa"),
                    ..latest
                },
                "build: recipe version 1.0.0 → 1.1.0; parent image 0123456789ab → fedcba987654",
            ),
            (
                "the latest image's parent is unknown",
                Some(BuiltFrom { parent_engine_image_id: None, ..latest }),
                latest,
                "build: parent image - → 0123456789ab",
            ),
            (
                "the latest image's components were not recorded",
                Some(BuiltFrom { components: None, ..latest }),
                latest,
                "build: the component versions the latest image was built from are not recorded",
            ),
        ];
        for (case, latest, now, expected) in cases {
            assert_eq!(decide(latest, now), expected, "{case}");
        }
    }
}
