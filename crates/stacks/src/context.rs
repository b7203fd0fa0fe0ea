//! What a template's intrinsics see while a stack runs: its parameters,
//! pseudo parameters, conditions and mappings, the resources created so far
//! (their physical ids and attributes, from the store) and other stacks'
//! exports.

use std::collections::BTreeMap;

use autopatch_documents::cloudformation::{StaticContext, Template, Value};
use serde_json::Value as Json;

/// Identity facts a stack's pseudo parameters come from.
#[derive(Debug, Clone)]
pub(crate) struct StackIdentity<'a> {
    pub(crate) stack_name: &'a str,
    pub(crate) stack_id: &'a str,
    pub(crate) region: &'a str,
    pub(crate) account_id: &'a str,
}

/// A stack's evaluation context before any resource exists: parameters,
/// pseudo parameters, mappings, the availability zones and other stacks'
/// exports. Conditions and resources are added by the caller.
pub(crate) fn stack_context(
    template: &Template,
    parameters: &BTreeMap<String, String>,
    identity: &StackIdentity<'_>,
    exports: BTreeMap<String, String>,
) -> StaticContext {
    let mut context = StaticContext::for_template(template, parameters);
    for (name, value) in [
        ("AWS::StackName", identity.stack_name),
        ("AWS::StackId", identity.stack_id),
        ("AWS::Region", identity.region),
        ("AWS::AccountId", identity.account_id),
        ("AWS::Partition", "aws"),
        ("AWS::URLSuffix", "amazonaws.com"),
    ] {
        context.pseudo_parameters.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    context.pseudo_parameters.insert("AWS::NotificationARNs".to_owned(), Value::List(Vec::new()));
    context.imports =
        exports.into_iter().map(|(name, value)| (name, Value::String(value))).collect();
    context.availability_zones.insert(identity.region.to_owned(), zones(identity.region));
    context.availability_zones.insert(String::new(), zones(identity.region));
    context
}

/// Records what a created resource gives to `Ref` and `Fn::GetAtt`.
pub(crate) fn add_resource(
    context: &mut StaticContext,
    logical_id: &str,
    physical_id: &str,
    attributes: &Json,
) {
    context.resource_refs.insert(logical_id.to_owned(), Value::String(physical_id.to_owned()));
    if let Json::Object(map) = attributes {
        for (name, value) in map {
            context
                .resource_attributes
                .insert((logical_id.to_owned(), name.clone()), from_json(value));
        }
    }
}

/// The local availability zones of `region`: three, named like AWS's.
pub(crate) fn zones(region: &str) -> Vec<String> {
    let separator = if region.ends_with(|c: char| c.is_ascii_digit()) { "" } else { "-" };
    ["a", "b", "c"].iter().map(|letter| format!("{region}{separator}{letter}")).collect()
}

/// A template value as JSON (for the store and the API): numbers that
/// parse stay numbers, `AWS::NoValue` entries are dropped.
pub(crate) fn to_json(value: &Value) -> Json {
    match value {
        Value::String(text) => Json::String(text.clone()),
        Value::Number(text) => text
            .parse::<i64>()
            .map(Json::from)
            .or_else(|_| text.parse::<f64>().map(Json::from))
            .unwrap_or_else(|_| Json::String(text.clone())),
        Value::Bool(value) => Json::Bool(*value),
        Value::Null | Value::NoValue => Json::Null,
        Value::List(items) => {
            Json::Array(items.iter().filter(|item| **item != Value::NoValue).map(to_json).collect())
        }
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .filter(|(_, value)| **value != Value::NoValue)
                .map(|(key, value)| (key.clone(), to_json(value)))
                .collect(),
        ),
    }
}

/// JSON from the store as a template value.
pub(crate) fn from_json(value: &Json) -> Value {
    match value {
        Json::String(text) => Value::String(text.clone()),
        Json::Number(number) => Value::Number(number.to_string()),
        Json::Bool(value) => Value::Bool(*value),
        Json::Null => Value::Null,
        Json::Array(items) => Value::List(items.iter().map(from_json).collect()),
        Json::Object(entries) => {
            Value::Map(entries.iter().map(|(key, value)| (key.clone(), from_json(value))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_named_like_aws() {
        assert_eq!(zones("local"), ["local-a", "local-b", "local-c"]);
        assert_eq!(
            zones("ap-southeast-2"),
            ["ap-southeast-2a", "ap-southeast-2b", "ap-southeast-2c"]
        );
    }

    #[test]
    fn json_round_trip_keeps_numbers_and_drops_no_value() {
        let value = Value::Map(
            [
                ("Port".to_owned(), Value::Number("80".into())),
                ("Gone".to_owned(), Value::NoValue),
                ("Names".to_owned(), Value::List(vec![Value::String("a".into()), Value::NoValue])),
            ]
            .into(),
        );
        let json = to_json(&value);
        assert_eq!(json, serde_json::json!({"Port": 80, "Names": ["a"]}));
        assert_eq!(
            from_json(&json),
            Value::Map(
                [
                    ("Port".to_owned(), Value::Number("80".into())),
                    ("Names".to_owned(), Value::List(vec![Value::String("a".into())])),
                ]
                .into()
            )
        );
    }
}
