//! Reading a resource's evaluated properties, with messages that name the
//! property and what was expected (they become the resource's
//! `ResourceStatusReason`); and [`check_known_values`], which checks before
//! anything is made the values a request already gives (literals, and what
//! parameters make of them), so that a value the resource would refuse is a
//! problem of the request, with its position, not a failed resource.

use std::collections::BTreeMap;

use autopatch_documents::Position;
use autopatch_documents::cloudformation::SettingValue;
use autopatch_documents::cloudformation::{
    EvalErrorKind, Expr, ExprKind, Parameter, Resource, Setting, StaticContext, Template, Value,
    evaluate,
};

/// A resource's evaluated `Properties`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Props<'a> {
    map: &'a BTreeMap<String, Value>,
}

static EMPTY: BTreeMap<String, Value> = BTreeMap::new();

impl<'a> Props<'a> {
    pub(crate) fn new(value: &'a Value) -> Props<'a> {
        match value {
            Value::Map(map) => Props { map },
            _ => Props { map: &EMPTY },
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !matches!(value, Value::NoValue | Value::Null))
    }

    /// A scalar as text.
    pub(crate) fn text(&self, key: &str) -> Result<Option<String>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value.as_scalar_text().map(Some).ok_or_else(|| {
                format!("property {key}: expected a string, found {}", value.describe())
            }),
        }
    }

    pub(crate) fn required_text(&self, key: &str) -> Result<String, String> {
        self.text(key)?.ok_or_else(|| format!("property {key} is required"))
    }

    /// A whole number, given as a number or a numeric string (templates
    /// often quote them: `MinSize: '0'`).
    pub(crate) fn number(&self, key: &str) -> Result<Option<u64>, String> {
        match self.text(key)? {
            None => Ok(None),
            Some(text) => whole_number(&text)
                .map(Some)
                .ok_or_else(|| format!("property {key}: expected a whole number, found {text:?}")),
        }
    }

    pub(crate) fn boolean(&self, key: &str) -> Result<Option<bool>, String> {
        match self.text(key)? {
            None => Ok(None),
            Some(text) => match text.to_ascii_lowercase().as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(format!("property {key}: expected true or false, found {text:?}")),
            },
        }
    }

    /// A list of scalars (a single scalar counts as a list of one).
    pub(crate) fn texts(&self, key: &str) -> Result<Vec<String>, String> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::List(items)) => items
                .iter()
                .filter(|item| !matches!(item, Value::NoValue))
                .map(|item| {
                    item.as_scalar_text().ok_or_else(|| {
                        format!(
                            "property {key}: expected a list of strings, found {}",
                            item.describe()
                        )
                    })
                })
                .collect(),
            Some(value) => value.as_scalar_text().map(|text| vec![text]).ok_or_else(|| {
                format!("property {key}: expected a list, found {}", value.describe())
            }),
        }
    }

    /// A nested map.
    pub(crate) fn object(&self, key: &str) -> Option<Props<'a>> {
        self.get(key).map(Props::new)
    }

    /// A list of maps.
    pub(crate) fn objects(&self, key: &str) -> Vec<Props<'a>> {
        match self.get(key) {
            Some(Value::List(items)) => items.iter().map(Props::new).collect(),
            _ => Vec::new(),
        }
    }
}

/// A whole number as properties give it (`2`, `'2'`, ` 2 `).
fn whole_number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// What a property's value must be for local stacks to make the resource:
/// what the resource's handler would refuse otherwise.
#[derive(Debug, Clone, Copy)]
enum Kind {
    WholeNumber,
    /// A whole number from 1 to 65535.
    Port,
    /// One of the fleet's instance types.
    InstanceType,
    /// One of these words.
    OneOf(&'static [&'static str]),
}

impl Kind {
    /// `Err(what was expected)` when `text` is not of this kind.
    fn check(self, text: &str) -> Result<(), String> {
        match self {
            Kind::WholeNumber => whole_number(text).map(drop).ok_or("a whole number".into()),
            Kind::Port => whole_number(text)
                .filter(|port| (1..=65535).contains(port))
                .map(drop)
                .ok_or("a port number from 1 to 65535".into()),
            Kind::InstanceType => autopatch_fleet::instance_type(text).map(drop).map_err(|_| {
                let known: Vec<&str> =
                    autopatch_fleet::instance_types().iter().map(|spec| spec.name).collect();
                format!("one of the instance types local stacks run: {}", known.join(", "))
            }),
            Kind::OneOf(words) => {
                if words.contains(&text) {
                    Ok(())
                } else {
                    Err(format!("one of {} (what local stacks run)", words.join(", ")))
                }
            }
        }
    }
}

const GROUP: &str = "AWS::AutoScaling::AutoScalingGroup";
const TARGET_GROUP: &str = "AWS::ElasticLoadBalancingV2::TargetGroup";

/// The properties checked before anything is made: resource type, path
/// under `Properties`, and what the value must be.
const KNOWN_VALUES: &[(&str, &[&str], Kind)] = &[
    ("AWS::AutoScaling::LaunchConfiguration", &["InstanceType"], Kind::InstanceType),
    ("AWS::EC2::LaunchTemplate", &["LaunchTemplateData", "InstanceType"], Kind::InstanceType),
    (GROUP, &["MinSize"], Kind::WholeNumber),
    (GROUP, &["MaxSize"], Kind::WholeNumber),
    (GROUP, &["DesiredCapacity"], Kind::WholeNumber),
    (GROUP, &["HealthCheckGracePeriod"], Kind::WholeNumber),
    (GROUP, &["HealthCheckType"], Kind::OneOf(&["EC2", "ELB"])),
    (TARGET_GROUP, &["Protocol"], Kind::OneOf(&["HTTP"])),
    (TARGET_GROUP, &["Port"], Kind::Port),
    (TARGET_GROUP, &["HealthCheckIntervalSeconds"], Kind::WholeNumber),
    (TARGET_GROUP, &["HealthCheckTimeoutSeconds"], Kind::WholeNumber),
    (TARGET_GROUP, &["HealthyThresholdCount"], Kind::WholeNumber),
    (TARGET_GROUP, &["UnhealthyThresholdCount"], Kind::WholeNumber),
    ("AWS::ElasticLoadBalancingV2::Listener", &["Port"], Kind::Port),
];

/// A value known before anything is made: the expression that gives it,
/// and its text.
struct Known<'a> {
    expr: &'a Expr,
    text: String,
}

/// Every property value and policy setting of `template` that is known
/// before anything is made (from literals, parameters, pseudo parameters,
/// mappings and conditions: what `context` holds) and that its resource
/// would refuse, as `(where, message)`. A value straight from a parameter
/// (`!Ref Size`) is reported at the parameter's declaration and names it;
/// any other at the value. Values made from other resources are left to the
/// resource; resources whose condition is false are not made, so not
/// checked.
pub(crate) fn check_known_values(
    template: &Template,
    context: &StaticContext,
) -> Vec<(Position, String)> {
    let mut problems = Vec::new();
    for resource in template.resources.values() {
        if let Some(condition) = &resource.condition
            && context.conditions.get(&condition.value) != Some(&true)
        {
            continue;
        }
        let checker = Checker { template, resource };
        for (resource_type, path, kind) in KNOWN_VALUES {
            if resource.resource_type.value != *resource_type {
                continue;
            }
            let Some(known) = known(resource, path, context) else { continue };
            if let Err(expected) = kind.check(&known.text) {
                problems.push(checker.problem(&path.join("."), &known, "", &expected));
            }
        }
        if resource.resource_type.value == GROUP {
            problems.extend(checker.group_sizes(context));
        }
        problems.extend(checker.policy_settings(context));
    }
    problems
}

/// The checks only an update has, on what is known before anything
/// changes (`existing`: the stack's resources that exist now, as logical id
/// and type), as `(where, message)`:
/// - a resource whose `Type` the new template changes: CloudFormation
///   refuses the update ("Update of resource type is not permitted"), at
///   the new `Type`;
/// - an Auto Scaling group the update would roll
///   (`AutoScalingRollingUpdate` without `WillReplace: true`) whose
///   `MinInstancesInService` is not below its `MaxSize`: AWS fails such an
///   update ("MinInstancesInService must be less than the autoscaling
///   group's MaxSize"); at the parameter the value comes from, else at the
///   `UpdatePolicy`.
pub(crate) fn check_update<'a>(
    template: &Template,
    context: &StaticContext,
    existing: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(Position, String)> {
    let mut problems = Vec::new();
    for (name, resource_type) in existing {
        let Some((_, resource)) = template.resources.iter().find(|(key, _)| key.0 == name) else {
            continue;
        };
        let new_type = &resource.resource_type;
        // A type local stacks do not run is refused as such already.
        if new_type.value != resource_type && crate::resources::supported(&new_type.value) {
            problems.push((
                new_type.span.start,
                format!(
                    "Update of resource type is not permitted. The new template modifies resource type of the following resources: [{name}] (from {resource_type} to {})",
                    new_type.value
                ),
            ));
        }
    }
    for resource in template.resources.values() {
        if resource.resource_type.value != GROUP
            || resource
                .condition
                .as_ref()
                .is_some_and(|condition| context.conditions.get(&condition.value) != Some(&true))
        {
            continue;
        }
        let Some(policy) = &resource.update_policy else { continue };
        let Some(rolling) = &policy.rolling_update else { continue };
        // With `WillReplace: true` the group is replaced, not rolled.
        let replacing = policy
            .replacing_update
            .as_ref()
            .is_some_and(|replacing| replacing.will_replace.resolve(context).unwrap_or(false));
        let Ok(min) = rolling.min_instances_in_service.resolve(context) else { continue };
        let Some(max) = known(resource, &["MaxSize"], context) else { continue };
        let Some(max_size) = whole_number(&max.text) else { continue };
        if replacing || u64::from(min) < max_size {
            continue;
        }
        let checker = Checker { template, resource };
        let what = "UpdatePolicy.AutoScalingRollingUpdate.MinInstancesInService";
        let detail = format!(", not below {}", checker.other("MaxSize", &max, max_size));
        let expected = "MinInstancesInService < MaxSize (AWS: MinInstancesInService must be less than the autoscaling group's MaxSize)";
        problems.push(match rolling.min_instances_in_service.expr() {
            Some(expr) => {
                let known = Known { expr, text: min.to_string() };
                checker.problem(what, &known, &detail, expected)
            }
            None => (
                policy.span.start,
                format!(
                    "property {what} of {}: found \"{min}\"{detail}; expected {expected}",
                    resource.name
                ),
            ),
        });
    }
    problems
}

/// The value at `path` under `resource`'s properties, when it is known now
/// and is a single value (`AWS::NoValue`: not given).
fn known<'a>(resource: &'a Resource, path: &[&str], context: &StaticContext) -> Option<Known<'a>> {
    let mut expr = resource.properties.as_ref()?;
    for key in path {
        expr = expr.get(key)?;
    }
    let text = match evaluate(expr, context).ok()? {
        Value::NoValue | Value::Null => return None,
        value => value.as_scalar_text().unwrap_or_else(|| value.describe()),
    };
    Some(Known { expr, text })
}

struct Checker<'a> {
    template: &'a Template,
    resource: &'a Resource,
}

impl Checker<'_> {
    /// The parameter `expr` is a `Ref` to, if any.
    fn parameter(&self, expr: &Expr) -> Option<&Parameter> {
        match &expr.kind {
            ExprKind::Ref(name) => self.template.parameters.get(&name.value),
            _ => None,
        }
    }

    /// A value as messages show it: a NoEcho parameter's is never shown.
    fn shown(&self, known: &Known<'_>) -> String {
        match self.parameter(known.expr) {
            Some(parameter) if parameter.no_echo => "a hidden value".to_owned(),
            _ => format!("{:?}", known.text),
        }
    }

    /// `found <value> for <what> ...<detail>; expected <expected>`, at the
    /// parameter the value comes from, else at the value.
    fn problem(
        &self,
        what: &str,
        known: &Known<'_>,
        detail: &str,
        expected: &str,
    ) -> (Position, String) {
        let name = &self.resource.name;
        let shown = self.shown(known);
        match self.parameter(known.expr) {
            Some(parameter) => (
                parameter.span.start,
                format!(
                    "parameter `{}`: found {shown} for {what} of {name} (at {}){detail}; expected {expected}",
                    parameter.name, known.expr.span.start
                ),
            ),
            None => (
                known.expr.span.start,
                format!("property {what} of {name}: found {shown}{detail}; expected {expected}"),
            ),
        }
    }

    /// Another value a message compares with: `MaxSize 2`, with the
    /// parameter it comes from (`` (parameter `Max`)``); a NoEcho
    /// parameter's value is not shown.
    fn other(&self, what: &str, known: &Known<'_>, number: u64) -> String {
        match self.parameter(known.expr) {
            Some(parameter) if parameter.no_echo => {
                format!("{what} (the hidden value of parameter `{}`)", parameter.name)
            }
            Some(parameter) => format!("{what} {number} (parameter `{}`)", parameter.name),
            None => format!("{what} {number}"),
        }
    }

    /// An Auto Scaling group needs `MinSize <= DesiredCapacity <= MaxSize`.
    fn group_sizes(&self, context: &StaticContext) -> Vec<(Position, String)> {
        let size = |key: &str| {
            let known = known(self.resource, &[key], context)?;
            let number = whole_number(&known.text)?;
            Some((known, number))
        };
        let expected = "MinSize <= DesiredCapacity <= MaxSize";
        let (min, max, desired) = (size("MinSize"), size("MaxSize"), size("DesiredCapacity"));
        let mut problems = Vec::new();
        if let (Some((min, min_size)), Some((max, max_size))) = (&min, &max)
            && min_size > max_size
        {
            let detail = format!(", above {}", self.other("MaxSize", max, *max_size));
            problems.push(self.problem("MinSize", min, &detail, expected));
        }
        if let Some((desired, capacity)) = &desired {
            if let Some((max, max_size)) = &max
                && capacity > max_size
            {
                let detail = format!(", above {}", self.other("MaxSize", max, *max_size));
                problems.push(self.problem("DesiredCapacity", desired, &detail, expected));
            } else if let Some((min, min_size)) = &min
                && capacity < min_size
            {
                let detail = format!(", below {}", self.other("MinSize", min, *min_size));
                problems.push(self.problem("DesiredCapacity", desired, &detail, expected));
            }
        }
        problems
    }

    /// `CreationPolicy` and `UpdatePolicy` settings given by intrinsic
    /// functions (literals are checked when the template is read).
    fn policy_settings(&self, context: &StaticContext) -> Vec<(Position, String)> {
        let mut problems = Vec::new();
        let mut check = |what: &str, outcome: Option<(&Expr, EvalErrorKind)>| {
            if let Some((expr, EvalErrorKind::InvalidSetting { value, expected })) = outcome {
                let known = Known { expr, text: value };
                problems.push(self.problem(what, &known, "", &expected));
            }
        };
        if let Some(policy) = &self.resource.creation_policy {
            if let Some(signal) = &policy.resource_signal {
                check("CreationPolicy.ResourceSignal.Count", refused(&signal.count, context));
                check("CreationPolicy.ResourceSignal.Timeout", refused(&signal.timeout, context));
            }
            if let Some(scaling) = &policy.auto_scaling_creation_policy {
                check(
                    "CreationPolicy.AutoScalingCreationPolicy.MinSuccessfulInstancesPercent",
                    refused(&scaling.min_successful_instances_percent, context),
                );
            }
        }
        if let Some(policy) = &self.resource.update_policy {
            if let Some(replacing) = &policy.replacing_update {
                check(
                    "UpdatePolicy.AutoScalingReplacingUpdate.WillReplace",
                    refused(&replacing.will_replace, context),
                );
            }
            if let Some(rolling) = &policy.rolling_update {
                let prefix = "UpdatePolicy.AutoScalingRollingUpdate";
                check(&format!("{prefix}.MaxBatchSize"), refused(&rolling.max_batch_size, context));
                check(
                    &format!("{prefix}.MinInstancesInService"),
                    refused(&rolling.min_instances_in_service, context),
                );
                check(
                    &format!("{prefix}.MinSuccessfulInstancesPercent"),
                    refused(&rolling.min_successful_instances_percent, context),
                );
                if let Some(pause) = &rolling.pause_time {
                    check(&format!("{prefix}.PauseTime"), refused(pause, context));
                }
                check(
                    &format!("{prefix}.WaitOnResourceSignals"),
                    refused(&rolling.wait_on_resource_signals, context),
                );
            }
            if let Some(scheduled) = &policy.scheduled_action {
                check(
                    "UpdatePolicy.AutoScalingScheduledAction.IgnoreUnmodifiedGroupSizeProperties",
                    refused(&scheduled.ignore_unmodified_group_size_properties, context),
                );
            }
        }
        problems
    }
}

/// A computed setting whose value is known now but not of its kind: the
/// expression and why.
fn refused<'a, T: SettingValue + Clone>(
    setting: &'a Setting<T>,
    context: &StaticContext,
) -> Option<(&'a Expr, EvalErrorKind)> {
    let expr = setting.expr()?;
    match setting.resolve(context) {
        Err(error) if matches!(error.kind, EvalErrorKind::InvalidSetting { .. }) => {
            Some((expr, error.kind))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props() -> Value {
        Value::Map(
            [
                ("MinSize".to_owned(), Value::String("0".into())),
                ("MaxSize".to_owned(), Value::Number("2".into())),
                ("Name".to_owned(), Value::List(vec![])),
                ("Zones".to_owned(), Value::strings(["a", "b"])),
                ("Gone".to_owned(), Value::NoValue),
            ]
            .into(),
        )
    }

    #[test]
    fn numbers_may_be_quoted_and_errors_name_the_property() {
        let value = props();
        let props = Props::new(&value);
        assert_eq!(props.number("MinSize"), Ok(Some(0)));
        assert_eq!(props.number("MaxSize"), Ok(Some(2)));
        assert_eq!(props.number("Gone"), Ok(None));
        assert_eq!(props.texts("Zones"), Ok(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(
            props.text("Name"),
            Err("property Name: expected a string, found a list".into())
        );
        assert_eq!(props.required_text("Missing"), Err("property Missing is required".into()));
    }

    /// `(line:col, message)` of every problem of `body` with `values`.
    fn known_problems(body: &str, values: &[(&str, &str)]) -> Vec<String> {
        use autopatch_documents::SourceFile;
        use autopatch_documents::cloudformation::parse_template;
        let template = parse_template(&SourceFile::new("t", body)).expect("valid");
        let values: BTreeMap<String, String> =
            values.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
        let context = StaticContext::for_template(&template, &values);
        let mut problems = check_known_values(&template, &context);
        problems.sort_by_key(|(at, _)| *at);
        problems.into_iter().map(|(at, message)| format!("{at}: {message}")).collect()
    }

    #[test]
    fn group_sizes_are_compared_and_hidden_values_stay_hidden() {
        let body = "
Parameters:
  Min: {Type: String}
  Max: {Type: String, NoEcho: true}
  Desired: {Type: String, NoEcho: true}
Resources:
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      LaunchConfigurationName: x
      MinSize: !Ref Min
      MaxSize: !Ref Max
      DesiredCapacity: !Ref Desired
  Other:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      LaunchConfigurationName: x
      MinSize: 3
      MaxSize: 2
      DesiredCapacity: !Ref Min
  Ports:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Port: 70000
      Protocol: !Ref Min
      HealthCheckIntervalSeconds: !GetAtt Group.AutoScalingGroupARN
";
        let problems = known_problems(body, &[("Min", "2"), ("Max", "3"), ("Desired", "1")]);
        expect_test::expect![[r#"
            [
                "3:3: parameter `Min`: found \"2\" for DesiredCapacity of Other (at 20:24), below MinSize 3; expected MinSize <= DesiredCapacity <= MaxSize",
                "3:3: parameter `Min`: found \"2\" for Protocol of Ports (at 25:17); expected one of HTTP (what local stacks run)",
                "5:3: parameter `Desired`: found a hidden value for DesiredCapacity of Group (at 13:24), below MinSize 2 (parameter `Min`); expected MinSize <= DesiredCapacity <= MaxSize",
                "18:16: property MinSize of Other: found \"3\", above MaxSize 2; expected MinSize <= DesiredCapacity <= MaxSize",
                "24:13: property Port of Ports: found \"70000\"; expected a port number from 1 to 65535",
            ]
        "#]]
        .assert_debug_eq(&problems);
        let problems = known_problems(body, &[("Min", "0"), ("Max", "1"), ("Desired", "2")]);
        assert!(
            problems.iter().any(|problem| problem.contains("found a hidden value for DesiredCapacity of Group (at 13:24), above MaxSize (the hidden value of parameter `Max`);")),
            "{problems:?}"
        );
    }

    /// QA s10 M3 and L7: what only an update refuses.
    #[test]
    fn an_update_may_not_change_a_type_nor_keep_more_in_service_than_max_size() {
        use autopatch_documents::SourceFile;
        use autopatch_documents::cloudformation::parse_template;
        let body = "
Parameters:
  Max: {Type: String}
  Keep: {Type: Number}
Resources:
  SG:
    Type: AWS::EC2::EIP
  Rolled:
    Type: AWS::AutoScaling::AutoScalingGroup
    UpdatePolicy:
      AutoScalingRollingUpdate:
        MinInstancesInService: 2
    Properties:
      LaunchConfigurationName: x
      MinSize: 0
      MaxSize: !Ref Max
  Kept:
    Type: AWS::AutoScaling::AutoScalingGroup
    UpdatePolicy:
      AutoScalingRollingUpdate:
        MinInstancesInService: !Ref Keep
    Properties:
      LaunchConfigurationName: x
      MinSize: 0
      MaxSize: 1
  Replaced:
    Type: AWS::AutoScaling::AutoScalingGroup
    UpdatePolicy:
      AutoScalingReplacingUpdate:
        WillReplace: true
      AutoScalingRollingUpdate:
        MinInstancesInService: 5
    Properties:
      LaunchConfigurationName: x
      MinSize: 0
      MaxSize: 1
";
        let template = parse_template(&SourceFile::new("t", body)).expect("valid");
        let problems = |values: &[(&str, &str)]| {
            let values: BTreeMap<String, String> =
                values.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
            let context = StaticContext::for_template(&template, &values);
            let existing =
                [("SG", "AWS::EC2::SecurityGroup"), ("Rolled", GROUP), ("Gone", "AWS::IAM::Role")];
            let mut problems = check_update(&template, &context, existing);
            problems.sort_by_key(|(at, _)| *at);
            problems.into_iter().map(|(at, message)| format!("{at}: {message}")).collect::<Vec<_>>()
        };
        expect_test::expect![[r#"
            [
                "4:3: parameter `Keep`: found \"1\" for UpdatePolicy.AutoScalingRollingUpdate.MinInstancesInService of Kept (at 21:32), not below MaxSize 1; expected MinInstancesInService < MaxSize (AWS: MinInstancesInService must be less than the autoscaling group's MaxSize)",
                "7:11: Update of resource type is not permitted. The new template modifies resource type of the following resources: [SG] (from AWS::EC2::SecurityGroup to AWS::EC2::EIP)",
                "11:7: property UpdatePolicy.AutoScalingRollingUpdate.MinInstancesInService of Rolled: found \"2\", not below MaxSize 2 (parameter `Max`); expected MinInstancesInService < MaxSize (AWS: MinInstancesInService must be less than the autoscaling group's MaxSize)",
            ]
        "#]]
        .assert_debug_eq(&problems(&[("Max", "2"), ("Keep", "1")]));
        let fine = problems(&[("Max", "3"), ("Keep", "0")]);
        assert_eq!(fine.len(), 1, "only the type change: {fine:?}");
    }
}
