//! What list queries need from a declaration: the field a dotted path names, and a query
//! string's text read as a value of that field, checked as a document's value would be.

use serde_json::Value;

use super::format::{expected, format_problem, has_type};
use super::model::{Field, FieldKind, Fields};
use super::validate::{display_value, same_value};

/// The fields along a dotted path (`dimensions.width`), outermost first, if every step names a
/// declared field and every step but the last is an object.
#[must_use]
pub fn field_path<'a>(fields: &'a Fields, path: &str) -> Option<Vec<&'a Field>> {
    let mut chain = Vec::new();
    let mut current = fields;
    let mut steps = path.split('.').peekable();
    while let Some(step) = steps.next() {
        let field = current.get(step)?;
        chain.push(field);
        if steps.peek().is_some() {
            let FieldKind::Object(nested) = &field.kind else {
                return None;
            };
            current = nested;
        }
    }
    Some(chain)
}

/// `text` from a query string as the JSON value a document would hold in `field`: numbers and
/// booleans are parsed, strings keep their text, and the format and `enum` are checked.
pub fn query_value(field: &Field, text: &str) -> Result<Value, String> {
    let value = match field.kind {
        FieldKind::Integer | FieldKind::Number => serde_json::from_str::<serde_json::Number>(text)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        FieldKind::Boolean => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::Null,
        },
        _ => Value::String(text.to_owned()),
    };
    if !has_type(&field.kind, &value) {
        return Err(expected(&field.kind).to_owned());
    }
    if let Some(problem) = format_problem(&field.kind, text) {
        return Err(problem.to_owned());
    }
    if let Some(allowed) = &field.enum_values
        && !allowed
            .iter()
            .any(|candidate| same_value(candidate, &value))
    {
        let list: Vec<String> = allowed.iter().map(display_value).collect();
        return Err(format!("is not one of {}", list.join(", ")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Registry;

    fn fields() -> Fields {
        let registry = Registry::from_sources(&[(
            "shop",
            "item",
            "fields:\n  n: {type: integer}\n  x: {type: number}\n  b: {type: boolean}\n  d: {type: date}\n  s: {type: string, enum: [a, b]}\n  o: {type: object, fields: {inner: {type: uuid}}}\n",
        )])
        .unwrap_or_else(|e| panic!("{e}"));
        registry
            .get("shop", "item")
            .map(|s| s.fields.clone())
            .unwrap_or_default()
    }

    #[test]
    fn paths_descend_into_objects_only() {
        let fields = fields();
        assert_eq!(field_path(&fields, "o.inner").map(|c| c.len()), Some(2));
        assert!(field_path(&fields, "n.inner").is_none());
        assert!(field_path(&fields, "o.missing").is_none());
        assert!(field_path(&fields, "o.").is_none());
    }

    #[test]
    fn values_are_read_with_the_field_type() {
        let fields = fields();
        let value = |name: &str, text: &str| query_value(&fields[name], text);
        assert_eq!(value("n", "12"), Ok(serde_json::json!(12)));
        assert_eq!(value("n", "1.5"), Err("must be an integer".into()));
        assert_eq!(value("x", "1e3"), Ok(serde_json::json!(1000.0)));
        assert_eq!(value("x", "NaN"), Err("must be a number".into()));
        assert_eq!(value("x", "1e999"), Err("must be a number".into()));
        assert_eq!(value("b", "yes"), Err("must be true or false".into()));
        assert_eq!(
            value("d", "2024-1-1"),
            Err("must be a date in the form YYYY-MM-DD".into())
        );
        for signed in ["+999-01-01", " 999-01-01", "-999-01-01"] {
            assert!(value("d", signed).is_err(), "{signed}");
        }
        assert_eq!(value("s", "c"), Err("is not one of a, b".into()));
        assert_eq!(value("s", "a"), Ok(serde_json::json!("a")));
    }
}
