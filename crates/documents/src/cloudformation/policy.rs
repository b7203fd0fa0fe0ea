//! `CreationPolicy` and `UpdatePolicy` of Auto Scaling groups, as typed
//! values, and ISO 8601 durations (`PT5M`).
//!
//! A setting is either given literally, checked here, or computed by an
//! intrinsic function (`Count: !Ref NumberOfInstanceCluster`), checked when
//! it is resolved against a stack with [`Setting::resolve`]. A policy, or
//! one of its parts (`AutoScalingRollingUpdate`, `ResourceSignal`...), may be
//! written with `Fn::If`, as CloudFormation allows: it is read as a
//! [`Chosen`] value, one policy per branch, that the stack's conditions
//! choose from ([`crate::cloudformation::Template::choose_policies`]).

use std::fmt;

use crate::cloudformation::evaluate::{EvalContext, EvalError, EvalErrorKind, describe, evaluate};
use crate::cloudformation::expr::{Expr, Spanned};
use crate::cloudformation::intrinsic::ExprReader;
use crate::source::Span;
use crate::yaml::{MappingReader, Node, Value};

/// A value written with `Fn::If`: which branch applies depends on a
/// condition of the template.
#[derive(Debug, Clone, PartialEq)]
pub enum Chosen<T> {
    Value(T),
    If { condition: Spanned<String>, then: Box<Chosen<T>>, otherwise: Box<Chosen<T>> },
}

impl<T> Chosen<T> {
    /// The value `holds` (whether a condition is true) chooses.
    pub fn choose(&self, holds: &dyn Fn(&str) -> bool) -> &T {
        match self {
            Chosen::Value(value) => value,
            Chosen::If { condition, then, otherwise } => {
                if holds(&condition.value) { then } else { otherwise }.choose(holds)
            }
        }
    }

    /// Like [`Chosen::choose`], `None` when a condition it needs is not
    /// known (`holds` answers `None`).
    pub fn choose_known(&self, holds: &dyn Fn(&str) -> Option<bool>) -> Option<&T> {
        match self {
            Chosen::Value(value) => Some(value),
            Chosen::If { condition, then, otherwise } => {
                if holds(&condition.value)? { then } else { otherwise }.choose_known(holds)
            }
        }
    }

    /// Every value a branch can give, in document order.
    pub fn values(&self) -> Vec<&T> {
        match self {
            Chosen::Value(value) => vec![value],
            Chosen::If { then, otherwise, .. } => {
                let mut values = then.values();
                values.extend(otherwise.values());
                values
            }
        }
    }

    /// The conditions named, in document order.
    pub fn conditions(&self) -> Vec<&Spanned<String>> {
        match self {
            Chosen::Value(_) => Vec::new(),
            Chosen::If { condition, then, otherwise } => {
                let mut names = vec![condition];
                names.extend(then.conditions());
                names.extend(otherwise.conditions());
                names
            }
        }
    }

    fn map<U>(self, f: &dyn Fn(T) -> U) -> Chosen<U> {
        match self {
            Chosen::Value(value) => Chosen::Value(f(value)),
            Chosen::If { condition, then, otherwise } => Chosen::If {
                condition,
                then: Box::new(then.map(f)),
                otherwise: Box::new(otherwise.map(f)),
            },
        }
    }
}

/// Every combination of `left` and `right`: `left`'s choices first.
fn zip<A: Clone, B: Clone>(left: Chosen<A>, right: Chosen<B>) -> Chosen<(A, B)> {
    match left {
        Chosen::Value(a) => right.map(&|b| (a.clone(), b)),
        Chosen::If { condition, then, otherwise } => Chosen::If {
            condition,
            then: Box::new(zip(*then, right.clone())),
            otherwise: Box::new(zip(*otherwise, right)),
        },
    }
}

/// The argument of `node` when it is an `Fn::If` (`!If [...]` or
/// `{Fn::If: [...]}`).
fn if_argument(node: &Node) -> Option<Node> {
    match (&node.tag, &node.value) {
        (Some(tag), _) if tag == "!If" => Some(Node { tag: None, ..node.clone() }),
        (None, Value::Mapping(entries)) => match entries.as_slice() {
            [(key, argument)] if key.tag.is_none() && key.as_str() == Some("Fn::If") => {
                Some(argument.clone())
            }
            _ => None,
        },
        _ => None,
    }
}

/// Whether `node` is `!Ref AWS::NoValue` (or its long form).
fn is_no_value(node: &Node) -> bool {
    let argument = match (&node.tag, &node.value) {
        (Some(tag), _) if tag == "!Ref" => Some(node),
        (None, Value::Mapping(entries)) => match entries.as_slice() {
            [(key, argument)] if key.tag.is_none() && key.as_str() == Some("Ref") => Some(argument),
            _ => None,
        },
        _ => None,
    };
    argument.and_then(Node::as_str) == Some("AWS::NoValue")
}

/// Reads a policy or a part of one, each branch of its `Fn::If`s.
type BranchReader<'f, T> = &'f dyn Fn(&Node, &mut ExprReader<'_>) -> Option<Chosen<Option<T>>>;

/// Reads a policy or part of one that may be written with `Fn::If`: each
/// branch is read with `read`, or is `!Ref AWS::NoValue` (the part left out).
/// `None` after reporting.
fn maybe_if<T: Clone>(
    node: &Node,
    reader: &mut ExprReader<'_>,
    read: BranchReader<'_, T>,
) -> Option<Chosen<Option<T>>> {
    let Some(argument) = if_argument(node) else { return read(node, reader) };
    let expected =
        "a list [condition name, value if true, value if false] as the argument of Fn::If";
    let Some([condition, then, otherwise]) =
        argument.as_sequence().filter(|_| argument.tag.is_none())
    else {
        reader
            .reporter
            .error(argument.span, format!("expected {expected}, found {}", argument.describe()));
        return None;
    };
    let condition = match (condition.as_str(), &condition.tag) {
        (Some(name), None) if !name.is_empty() => Spanned::new(name.to_owned(), condition.span),
        _ => {
            reader.reporter.error(
                condition.span,
                format!(
                    "expected a condition name as the first argument of Fn::If, found {}",
                    condition.describe()
                ),
            );
            return None;
        }
    };
    let branch = |node: &Node, reader: &mut ExprReader<'_>| {
        if is_no_value(node) { Some(Chosen::Value(None)) } else { maybe_if(node, reader, read) }
    };
    let (then, otherwise) = (branch(then, reader), branch(otherwise, reader));
    Some(Chosen::If { condition, then: Box::new(then?), otherwise: Box::new(otherwise?) })
}

/// An optional part of a policy, maybe written with `Fn::If`; absent (or
/// unreadable, after reporting) is `Value(None)`.
fn part<T: Clone>(
    node: Option<&Node>,
    reader: &mut ExprReader<'_>,
    read: &dyn Fn(&Node, &mut ExprReader<'_>) -> Option<T>,
) -> Chosen<Option<T>> {
    let Some(node) = node else { return Chosen::Value(None) };
    let leaf = |node: &Node, reader: &mut ExprReader<'_>| {
        read(node, reader).map(|value| Chosen::Value(Some(value)))
    };
    maybe_if(node, reader, &leaf).unwrap_or(Chosen::Value(None))
}

/// The processes `AutoScalingRollingUpdate.SuspendProcesses` may name.
pub const SCALING_PROCESSES: [&str; 9] = [
    "AZRebalance",
    "AddToLoadBalancer",
    "AlarmNotification",
    "HealthCheck",
    "InstanceRefresh",
    "Launch",
    "ReplaceUnhealthy",
    "ScheduledActions",
    "Terminate",
];

/// A policy setting: a literal value, already checked, or an intrinsic
/// function to evaluate against the stack.
#[derive(Debug, Clone, PartialEq)]
pub enum Setting<T> {
    Given(T),
    Computed(Expr),
}

/// A type a policy setting can have.
pub trait SettingValue: Sized {
    /// Reads a value from its text; the error is the message's "expected" part.
    ///
    /// # Errors
    /// Returns what was expected when `text` is not a valid value.
    fn from_text(text: &str) -> Result<Self, String>;
}

impl SettingValue for bool {
    fn from_text(text: &str) -> Result<bool, String> {
        match text {
            "true" | "True" | "TRUE" => Ok(true),
            "false" | "False" | "FALSE" => Ok(false),
            _ => Err("a boolean (true or false)".to_owned()),
        }
    }
}

impl SettingValue for u32 {
    fn from_text(text: &str) -> Result<u32, String> {
        text.parse().map_err(|_| "a whole number from 0".to_owned())
    }
}

/// A length of time written as an ISO 8601 duration, like `PT5M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IsoDuration {
    pub seconds: u64,
}

impl SettingValue for IsoDuration {
    fn from_text(text: &str) -> Result<IsoDuration, String> {
        parse_iso_duration(text)
            .map(|seconds| IsoDuration { seconds })
            .ok_or_else(|| "an ISO 8601 duration like PT5M, PT1H30M or PT45S".to_owned())
    }
}

impl fmt::Display for IsoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (hours, minutes, seconds) =
            (self.seconds / 3600, self.seconds / 60 % 60, self.seconds % 60);
        f.write_str("PT")?;
        if hours > 0 {
            write!(f, "{hours}H")?;
        }
        if minutes > 0 {
            write!(f, "{minutes}M")?;
        }
        if seconds > 0 || self.seconds == 0 {
            write!(f, "{seconds}S")?;
        }
        Ok(())
    }
}

/// Parses `P[nD][T[nH][nM][nS]]` (whole numbers, at least one part) into
/// seconds.
pub fn parse_iso_duration(text: &str) -> Option<u64> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (rest, None),
    };
    let mut seconds: u64 = 0;
    let mut parts = 0;
    let mut read = |text: &str, units: &[(char, u64)]| -> Option<()> {
        let mut number = String::new();
        let mut next_unit = 0;
        for character in text.chars() {
            if character.is_ascii_digit() {
                number.push(character);
                continue;
            }
            let idx = units[next_unit..].iter().position(|(unit, _)| *unit == character)?;
            let value: u64 = number.parse().ok()?;
            seconds = seconds.checked_add(value.checked_mul(units[next_unit + idx].1)?)?;
            number.clear();
            next_unit += idx + 1;
            parts += 1;
        }
        number.is_empty().then_some(())
    };
    read(date, &[('D', 86_400)])?;
    if let Some(time) = time {
        if time.is_empty() {
            return None;
        }
        read(time, &[('H', 3600), ('M', 60), ('S', 1)])?;
    }
    (parts > 0).then_some(seconds)
}

impl<T: SettingValue + Clone> Setting<T> {
    /// The value, evaluating an intrinsic function against `ctx`.
    ///
    /// # Errors
    /// Returns why the function could not be evaluated, or that its value is
    /// not of the expected kind.
    pub fn resolve(&self, ctx: &dyn EvalContext) -> Result<T, EvalError> {
        match self {
            Setting::Given(value) => Ok(value.clone()),
            Setting::Computed(expr) => {
                let value = evaluate(expr, ctx)?;
                let text = value.as_scalar_text().ok_or_else(|| EvalError {
                    span: expr.span,
                    kind: EvalErrorKind::WrongType {
                        function: "policy setting",
                        expected: "a single value",
                        found: describe(&value, &|text| ctx.mask(text)),
                    },
                })?;
                T::from_text(&text).map_err(|expected| EvalError {
                    span: expr.span,
                    kind: EvalErrorKind::InvalidSetting { value: ctx.mask(&text), expected },
                })
            }
        }
    }
}

/// `CreationPolicy`: what must happen before a resource counts as created.
#[derive(Debug, Clone, PartialEq)]
pub struct CreationPolicy {
    pub span: Span,
    pub resource_signal: Option<ResourceSignal>,
    pub auto_scaling_creation_policy: Option<AutoScalingCreationPolicy>,
}

/// `CreationPolicy.ResourceSignal`: `count` success signals within `timeout`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSignal {
    /// Defaults to 1.
    pub count: Setting<u32>,
    /// Defaults to `PT5M`; at most `PT12H`.
    pub timeout: Setting<IsoDuration>,
}

/// `CreationPolicy.AutoScalingCreationPolicy`.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoScalingCreationPolicy {
    /// The share of instances that must signal success; 0 to 100, default 100.
    pub min_successful_instances_percent: Setting<u32>,
}

/// `UpdatePolicy`: how an Auto Scaling group is updated.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdatePolicy {
    pub span: Span,
    pub replacing_update: Option<ReplacingUpdate>,
    pub rolling_update: Option<RollingUpdate>,
    pub scheduled_action: Option<ScheduledActionPolicy>,
}

/// `AutoScalingReplacingUpdate`: a new group replaces the old one.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplacingUpdate {
    pub will_replace: Setting<bool>,
}

/// `AutoScalingRollingUpdate`: instances are replaced in batches.
#[derive(Debug, Clone, PartialEq)]
pub struct RollingUpdate {
    /// Defaults to 1.
    pub max_batch_size: Setting<u32>,
    /// Defaults to 0.
    pub min_instances_in_service: Setting<u32>,
    /// 0 to 100, default 100.
    pub min_successful_instances_percent: Setting<u32>,
    /// At most `PT1H`; defaults to `PT0S`, or `PT5M` when
    /// `wait_on_resource_signals` holds.
    pub pause_time: Option<Setting<IsoDuration>>,
    /// Names from [`SCALING_PROCESSES`].
    pub suspend_processes: Vec<String>,
    /// Defaults to false.
    pub wait_on_resource_signals: Setting<bool>,
}

/// `AutoScalingScheduledAction`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledActionPolicy {
    pub ignore_unmodified_group_size_properties: Setting<bool>,
}

/// Reads `CreationPolicy`, maybe written with `Fn::If`.
pub(crate) fn creation_policy(
    node: &Node,
    reader: &mut ExprReader<'_>,
) -> Option<Chosen<Option<CreationPolicy>>> {
    maybe_if(node, reader, &|node, reader| {
        let mut map = MappingReader::new(node, &mut reader.reporter)?;
        let resource_signal = part(map.optional("ResourceSignal"), reader, &resource_signal);
        let scaling =
            part(map.optional("AutoScalingCreationPolicy"), reader, &auto_scaling_creation_policy);
        map.finish(&mut reader.reporter);
        let span = node.span;
        Some(zip(resource_signal, scaling).map(&|(
            resource_signal,
            auto_scaling_creation_policy,
        )| {
            Some(CreationPolicy { span, resource_signal, auto_scaling_creation_policy })
        }))
    })
}

fn resource_signal(node: &Node, reader: &mut ExprReader<'_>) -> Option<ResourceSignal> {
    let mut map = MappingReader::new(node, &mut reader.reporter)?;
    let count = setting(map.optional("Count"), reader, Setting::Given(1), |count: &u32| {
        (*count >= 1).then_some(()).ok_or("a count of at least 1")
    });
    let timeout = setting(
        map.optional("Timeout"),
        reader,
        Setting::Given(IsoDuration { seconds: 300 }),
        |timeout: &IsoDuration| {
            (timeout.seconds <= 12 * 3600).then_some(()).ok_or("a timeout of at most PT12H")
        },
    );
    map.finish(&mut reader.reporter);
    Some(ResourceSignal { count: count?, timeout: timeout? })
}

fn auto_scaling_creation_policy(
    node: &Node,
    reader: &mut ExprReader<'_>,
) -> Option<AutoScalingCreationPolicy> {
    let mut map = MappingReader::new(node, &mut reader.reporter)?;
    let percent = percent(map.optional("MinSuccessfulInstancesPercent"), reader);
    map.finish(&mut reader.reporter);
    Some(AutoScalingCreationPolicy { min_successful_instances_percent: percent? })
}

/// Reads `UpdatePolicy`, maybe written with `Fn::If`.
pub(crate) fn update_policy(
    node: &Node,
    reader: &mut ExprReader<'_>,
) -> Option<Chosen<Option<UpdatePolicy>>> {
    maybe_if(node, reader, &|node, reader| {
        let mut map = MappingReader::new(node, &mut reader.reporter)?;
        let replacing = part(map.optional("AutoScalingReplacingUpdate"), reader, &replacing_update);
        let rolling = part(map.optional("AutoScalingRollingUpdate"), reader, &rolling_update);
        let scheduled = part(map.optional("AutoScalingScheduledAction"), reader, &scheduled_action);
        map.finish(&mut reader.reporter);
        let span = node.span;
        Some(zip(zip(replacing, rolling), scheduled).map(&|(
            (replacing_update, rolling_update),
            scheduled_action,
        )| {
            Some(UpdatePolicy { span, replacing_update, rolling_update, scheduled_action })
        }))
    })
}

fn replacing_update(node: &Node, reader: &mut ExprReader<'_>) -> Option<ReplacingUpdate> {
    let mut map = MappingReader::new(node, &mut reader.reporter)?;
    let will_replace =
        setting(map.optional("WillReplace"), reader, Setting::Given(false), no_check);
    map.finish(&mut reader.reporter);
    Some(ReplacingUpdate { will_replace: will_replace? })
}

fn rolling_update(node: &Node, reader: &mut ExprReader<'_>) -> Option<RollingUpdate> {
    let mut map = MappingReader::new(node, &mut reader.reporter)?;
    let max_batch_size =
        setting(map.optional("MaxBatchSize"), reader, Setting::Given(1), |size: &u32| {
            (*size >= 1).then_some(()).ok_or("a batch size of at least 1")
        });
    let min_instances_in_service =
        setting(map.optional("MinInstancesInService"), reader, Setting::Given(0), no_check);
    let min_successful_instances_percent =
        percent(map.optional("MinSuccessfulInstancesPercent"), reader);
    let pause_time = map.optional("PauseTime").map(|node| {
        setting(Some(node), reader, Setting::Given(IsoDuration { seconds: 0 }), |pause| {
            (pause.seconds <= 3600).then_some(()).ok_or("a pause of at most PT1H")
        })
    });
    let suspend_processes = map.optional("SuspendProcesses").map(|node| {
        let items = node.expect_sequence(&mut reader.reporter)?;
        let mut names = Vec::new();
        for item in items {
            let name = item.expect_string(&mut reader.reporter)?;
            if !SCALING_PROCESSES.contains(&name) {
                reader.reporter.error(
                    item.span,
                    format!(
                        "found the scaling process `{name}`; expected one of {}",
                        SCALING_PROCESSES.join(", ")
                    ),
                );
                return None;
            }
            names.push(name.to_owned());
        }
        Some(names)
    });
    let wait_on_resource_signals =
        setting(map.optional("WaitOnResourceSignals"), reader, Setting::Given(false), no_check);
    map.finish(&mut reader.reporter);
    Some(RollingUpdate {
        max_batch_size: max_batch_size?,
        min_instances_in_service: min_instances_in_service?,
        min_successful_instances_percent: min_successful_instances_percent?,
        pause_time: match pause_time {
            Some(pause_time) => Some(pause_time?),
            None => None,
        },
        suspend_processes: match suspend_processes {
            Some(names) => names?,
            None => Vec::new(),
        },
        wait_on_resource_signals: wait_on_resource_signals?,
    })
}

fn scheduled_action(node: &Node, reader: &mut ExprReader<'_>) -> Option<ScheduledActionPolicy> {
    let mut map = MappingReader::new(node, &mut reader.reporter)?;
    let ignore = setting(
        map.optional("IgnoreUnmodifiedGroupSizeProperties"),
        reader,
        Setting::Given(false),
        no_check,
    );
    map.finish(&mut reader.reporter);
    Some(ScheduledActionPolicy { ignore_unmodified_group_size_properties: ignore? })
}

fn no_check<T>(_: &T) -> Result<(), &'static str> {
    Ok(())
}

fn percent(node: Option<&Node>, reader: &mut ExprReader<'_>) -> Option<Setting<u32>> {
    setting(node, reader, Setting::Given(100), |percent: &u32| {
        (*percent <= 100).then_some(()).ok_or("a percentage from 0 to 100")
    })
}

/// Reads a setting: a scalar checked with `T::from_text` and `check`, or an
/// intrinsic function; `default` when absent.
fn setting<T: SettingValue>(
    node: Option<&Node>,
    reader: &mut ExprReader<'_>,
    default: Setting<T>,
    check: impl Fn(&T) -> Result<(), &'static str>,
) -> Option<Setting<T>> {
    let Some(node) = node else { return Some(default) };
    let is_function =
        node.tag.is_some() || matches!(&node.value, Value::Mapping(entries) if entries.len() == 1);
    if is_function {
        let expr = reader.expr(node)?;
        if expr.kind.function_name().is_none() {
            reader.reporter.error(
                node.span,
                format!(
                    "expected a single value or an intrinsic function, found {}",
                    node.describe()
                ),
            );
            return None;
        }
        return Some(Setting::Computed(expr));
    }
    let text = match &node.value {
        Value::Sequence(_) | Value::Mapping(_) | Value::Null => None,
        _ => node.scalar_text(),
    };
    let Some(text) = text else {
        reader
            .reporter
            .error(node.span, format!("expected a single value, found {}", node.describe()));
        return None;
    };
    let value = match T::from_text(text) {
        Ok(value) => value,
        Err(expected) => {
            reader.reporter.error(node.span, format!("found {text:?}; expected {expected}"));
            return None;
        }
    };
    if let Err(expected) = check(&value) {
        reader.reporter.error(node.span, format!("found {text:?}; expected {expected}"));
        return None;
    }
    Some(Setting::Given(value))
}

impl<T> Setting<T> {
    /// The intrinsic function, if the setting is computed.
    pub fn expr(&self) -> Option<&Expr> {
        match self {
            Setting::Given(_) => None,
            Setting::Computed(expr) => Some(expr),
        }
    }
}

impl CreationPolicy {
    /// The intrinsic functions among the settings.
    pub fn exprs(&self) -> Vec<&Expr> {
        let mut exprs = Vec::new();
        if let Some(signal) = &self.resource_signal {
            exprs.extend(signal.count.expr());
            exprs.extend(signal.timeout.expr());
        }
        if let Some(policy) = &self.auto_scaling_creation_policy {
            exprs.extend(policy.min_successful_instances_percent.expr());
        }
        exprs
    }
}

impl UpdatePolicy {
    /// The intrinsic functions among the settings.
    pub fn exprs(&self) -> Vec<&Expr> {
        let mut exprs = Vec::new();
        if let Some(replacing) = &self.replacing_update {
            exprs.extend(replacing.will_replace.expr());
        }
        if let Some(rolling) = &self.rolling_update {
            exprs.extend(rolling.max_batch_size.expr());
            exprs.extend(rolling.min_instances_in_service.expr());
            exprs.extend(rolling.min_successful_instances_percent.expr());
            exprs.extend(rolling.pause_time.as_ref().and_then(Setting::expr));
            exprs.extend(rolling.wait_on_resource_signals.expr());
        }
        if let Some(scheduled) = &self.scheduled_action {
            exprs.extend(scheduled.ignore_unmodified_group_size_properties.expr());
        }
        exprs
    }
}
