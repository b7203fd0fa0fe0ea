//! The order resources are created in: each after the resources it refers to
//! (`Ref`, `Fn::GetAtt`, `Fn::Sub` variables) or names in `DependsOn`;
//! deletion goes the other way.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::cloudformation::document::{Resource, ResourceName, Template};
use crate::cloudformation::expr::Expr;

/// Resources depend on each other in a circle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("found a circular dependency between resources: {}", CyclePath(cycle))]
pub struct CycleError {
    /// The resources of one cycle in dependency order, the first repeated at
    /// the end: `[A, B, A]` when A needs B and B needs A.
    pub cycle: Vec<ResourceName>,
}

struct CyclePath<'a>(&'a [ResourceName]);

impl fmt::Display for CyclePath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (idx, name) in self.0.iter().enumerate() {
            if idx > 0 {
                f.write_str(" -> ")?;
            }
            write!(f, "{name}")?;
        }
        Ok(())
    }
}

/// Every expression of a resource that may refer to others: its properties,
/// metadata and computed policy settings (of every branch of a policy
/// written with `Fn::If`).
pub(crate) fn resource_exprs(resource: &Resource) -> Vec<&Expr> {
    let mut exprs: Vec<&Expr> = Vec::new();
    exprs.extend(&resource.properties);
    exprs.extend(&resource.metadata);
    match &resource.creation_policy_choice {
        Some(choice) => {
            exprs.extend(choice.values().into_iter().flatten().flat_map(|policy| policy.exprs()));
        }
        None => exprs.extend(resource.creation_policy.iter().flat_map(|policy| policy.exprs())),
    }
    match &resource.update_policy_choice {
        Some(choice) => {
            exprs.extend(choice.values().into_iter().flatten().flat_map(|policy| policy.exprs()));
        }
        None => exprs.extend(resource.update_policy.iter().flat_map(|policy| policy.exprs())),
    }
    exprs
}

/// For each resource, the other resources of `template` it needs first.
pub fn resource_dependencies(
    template: &Template,
) -> BTreeMap<ResourceName, BTreeSet<ResourceName>> {
    let mut dependencies = BTreeMap::new();
    for (name, resource) in &template.resources {
        let mut needs = BTreeSet::new();
        for expr in resource_exprs(resource) {
            for reference in expr.references() {
                if let Some((other, _)) = template.resources.get_key_value(reference.target()) {
                    needs.insert(other.clone());
                }
            }
        }
        for other in &resource.depends_on {
            if let Some((other, _)) = template.resources.get_key_value(other.value.as_str()) {
                needs.insert(other.clone());
            }
        }
        dependencies.insert(name.clone(), needs);
    }
    dependencies
}

/// The order to create the resources that exist under `conditions` (a
/// resource whose condition is false or absent from `conditions` is left
/// out): every resource after those it needs, and among resources free to
/// go, by name. Delete in the reverse order.
///
/// # Errors
/// Returns one cycle when the resources depend on each other in a circle.
pub fn dependency_order(
    template: &Template,
    conditions: &BTreeMap<String, bool>,
) -> Result<Vec<ResourceName>, CycleError> {
    let exists = |resource: &Resource| match &resource.condition {
        Some(condition) => conditions.get(&condition.value).copied().unwrap_or(false),
        None => true,
    };
    let included: BTreeSet<ResourceName> = template
        .resources
        .iter()
        .filter(|(_, resource)| exists(resource))
        .map(|(name, _)| name.clone())
        .collect();
    let dependencies: BTreeMap<ResourceName, BTreeSet<ResourceName>> =
        resource_dependencies(template)
            .into_iter()
            .filter(|(name, _)| included.contains(name))
            .map(|(name, needs)| (name, needs.intersection(&included).cloned().collect()))
            .collect();
    topological_order(&dependencies)
}

/// Kahn's algorithm, smallest name first among the ready.
pub(crate) fn topological_order(
    dependencies: &BTreeMap<ResourceName, BTreeSet<ResourceName>>,
) -> Result<Vec<ResourceName>, CycleError> {
    let mut waiting: BTreeMap<&ResourceName, usize> =
        dependencies.iter().map(|(name, needs)| (name, needs.len())).collect();
    let mut needed_by: BTreeMap<&ResourceName, Vec<&ResourceName>> = BTreeMap::new();
    for (name, needs) in dependencies {
        for other in needs {
            needed_by.entry(other).or_default().push(name);
        }
    }
    let mut ready: BTreeSet<&ResourceName> =
        waiting.iter().filter(|(_, count)| **count == 0).map(|(name, _)| *name).collect();
    let mut order = Vec::new();
    while let Some(name) = ready.pop_first() {
        order.push(name.clone());
        waiting.remove(name);
        for dependent in needed_by.get(name).into_iter().flatten() {
            if let Some(count) = waiting.get_mut(dependent) {
                *count -= 1;
                if *count == 0 {
                    ready.insert(dependent);
                }
            }
        }
    }
    if waiting.is_empty() {
        return Ok(order);
    }
    let left: BTreeSet<&ResourceName> = waiting.keys().copied().collect();
    Err(CycleError { cycle: find_cycle(dependencies, &left) })
}

/// A cycle among `left`, where every resource needs another of `left`: walk
/// from the smallest name until a resource repeats.
fn find_cycle(
    dependencies: &BTreeMap<ResourceName, BTreeSet<ResourceName>>,
    left: &BTreeSet<&ResourceName>,
) -> Vec<ResourceName> {
    let Some(mut current) = left.first().copied() else { return Vec::new() };
    let mut path: Vec<&ResourceName> = Vec::new();
    loop {
        if let Some(start) = path.iter().position(|seen| *seen == current) {
            let mut cycle: Vec<ResourceName> =
                path[start..].iter().map(|name| (*name).clone()).collect();
            cycle.push(current.clone());
            return cycle;
        }
        path.push(current);
        let next = dependencies
            .get(current)
            .and_then(|needs| needs.iter().find(|other| left.contains(other)));
        match next {
            Some(next) => current = next,
            None => return path.into_iter().cloned().collect(),
        }
    }
}
