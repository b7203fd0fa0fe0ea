//! Reading a resource's evaluated properties, with messages that name the
//! property and what was expected (they become the resource's
//! `ResourceStatusReason`).

use std::collections::BTreeMap;

use autopatch_documents::cloudformation::Value;

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
            Some(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("property {key}: expected a whole number, found {text:?}")),
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
}
