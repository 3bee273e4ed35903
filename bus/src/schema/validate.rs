//! Checks a request body (or a merged document) against a [`DocumentSchema`] and reports every
//! problem at once, each with an RFC 6901 pointer into the body.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::format::{expected, format_problem, has_type};
use super::model::{DocumentSchema, Field, FieldKind, Fields, MANAGED_FIELDS, RoleSet};

/// One problem in a body, as it appears in a `422` problem's `errors[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldError {
    /// RFC 6901 pointer into the request body, e.g. `/dimensions/width` or `/tags/3`.
    pub pointer: String,
    pub code: ErrorCode,
    /// A short sentence about the value; never echoes the value itself, which may be huge.
    pub detail: String,
}

/// The `errors[].code` vocabulary of the HTTP contract. `Immutable` and `RefNotFound` need the
/// stored document or other collections, so the command handler reports them, not
/// [`DocumentSchema::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Required,
    Type,
    Minimum,
    Maximum,
    MinLength,
    MaxLength,
    Pattern,
    Enum,
    Format,
    MinItems,
    MaxItems,
    UnknownField,
    Immutable,
    ReadOnly,
    ForbiddenField,
    RefNotFound,
}

/// What kind of body is being validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A `POST` body: a whole new document; defaults are filled in.
    Create,
    /// A `PATCH` body (JSON Merge Patch): only the fields being changed.
    Patch,
    /// A whole document after a patch was merged, written by the server itself.
    Stored,
    /// The fields a declared command sets, as a merge patch: the command's right is the right
    /// to set them, so their `read_only` and `acl.write` do not apply.
    Set,
    /// The fields the first event of a command `on: collection` sets: a whole new document,
    /// defaults filled in, with the command's right to set them as in [`Mode::Set`].
    SetNew,
}

impl DocumentSchema {
    /// Validates `body` (a JSON object, else one `type` error at pointer `""`) and returns all
    /// errors at once, in body order then declaration order.
    ///
    /// `may_write` decides a field's `acl.write`; it is only consulted for fields that have
    /// one, in `Create` and `Patch`. On success `Create` returns the document with defaults
    /// filled in (also inside nested objects); `Patch` and `Stored` return `body`. Every mode
    /// returns values in their canonical spelling (`3.0` → `3` for integers, lowercase UUIDs).
    /// `immutable` is left to the handler: only it knows whether a patched value differs from
    /// the stored one.
    ///
    /// # Errors
    /// Every [`FieldError`] found, never an empty list.
    pub fn validate(
        &self,
        body: &Value,
        mode: Mode,
        may_write: &dyn Fn(&RoleSet) -> bool,
    ) -> Result<Value, Vec<FieldError>> {
        validate_fields(&self.fields, body, mode, may_write)
    }
}

/// Checks `body` against `fields` as [`DocumentSchema::validate`] does a document's; also
/// used for a command's params.
///
/// # Errors
/// Every [`FieldError`] found, never an empty list.
pub fn validate_fields(
    fields: &Fields,
    body: &Value,
    mode: Mode,
    may_write: &dyn Fn(&RoleSet) -> bool,
) -> Result<Value, Vec<FieldError>> {
    let Value::Object(map) = body else {
        return Err(vec![error("", ErrorCode::Type, "must be a JSON object")]);
    };
    let rules = Rules::for_mode(mode);
    let mut checker = Checker {
        may_write,
        errors: Vec::new(),
    };
    let mut doc = map.clone();
    checker.check_object(fields, &mut doc, "", rules, true);
    if checker.errors.is_empty() {
        Ok(Value::Object(doc))
    } else {
        Err(checker.errors)
    }
}

/// Gives a value its one canonical spelling, so unique reservations, typed view columns,
/// comparisons and the stored JSON see equal values as equal: a whole `3.0` (or `1e16`)
/// becomes the integer `3` (`10000000000000000`) — which is also how Postgres renders it back
/// from `jsonb`, so the value reads back exactly as it was accepted — and UUIDs are lowercase.
fn normalize(kind: &FieldKind, value: &mut Value) {
    match (kind, &*value) {
        (FieldKind::Integer | FieldKind::Number, Value::Number(n)) if n.is_f64() => {
            if let Some(whole) = n.as_f64().and_then(whole_number) {
                *value = whole;
            }
        }
        (FieldKind::Uuid | FieldKind::Ref { .. }, Value::String(text)) => {
            *value = Value::String(text.to_ascii_lowercase());
        }
        _ => {}
    }
}

/// A whole double inside the 64-bit integer range, as that integer (every such double is
/// exactly an integer, so nothing is lost); `-0.0` becomes `0`, as `jsonb` keeps it.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn whole_number(f: f64) -> Option<Value> {
    const I64_LOW: f64 = -9_223_372_036_854_775_808.0; // -2^63
    const I64_END: f64 = 9_223_372_036_854_775_808.0; // 2^63
    const U64_END: f64 = 18_446_744_073_709_551_616.0; // 2^64
    if f.fract() != 0.0 {
        return None;
    }
    // The casts are exact: the ranges were checked and `f` is whole.
    if (I64_LOW..I64_END).contains(&f) {
        Some(Value::from(f as i64))
    } else if (I64_END..U64_END).contains(&f) {
        Some(Value::from(f as u64))
    } else {
        None
    }
}

/// Checks one value against `field` as a stored value would be (no access rules, no
/// defaults); the loader uses it for `default` and `enum` entries. The pointers are relative
/// to the value.
pub(super) fn check_field_value(field: &Field, value: &Value) -> Vec<FieldError> {
    let mut checker = Checker {
        may_write: &|_| true,
        errors: Vec::new(),
    };
    checker.check_entry(field, &mut value.clone(), "", Rules::for_mode(Mode::Stored));
    checker.errors
}

/// How a mode treats missing fields, `null`s and access; array items switch `partial` off
/// because a merge patch replaces arrays whole.
#[derive(Clone, Copy)]
struct Rules {
    /// Missing fields are untouched and `null` clears an optional field.
    partial: bool,
    apply_defaults: bool,
    /// Server-managed names (`id`, `version`, …) are refused.
    refuse_managed: bool,
    /// `read_only` and `acl.write` fields are refused.
    check_access: bool,
}

impl Rules {
    fn for_mode(mode: Mode) -> Rules {
        match mode {
            Mode::Create => Rules {
                partial: false,
                apply_defaults: true,
                refuse_managed: true,
                check_access: true,
            },
            Mode::Patch => Rules {
                partial: true,
                apply_defaults: false,
                refuse_managed: true,
                check_access: true,
            },
            Mode::Stored => Rules {
                partial: false,
                apply_defaults: false,
                refuse_managed: false,
                check_access: false,
            },
            Mode::Set => Rules {
                partial: true,
                apply_defaults: false,
                refuse_managed: true,
                check_access: false,
            },
            Mode::SetNew => Rules {
                partial: false,
                apply_defaults: true,
                refuse_managed: true,
                check_access: false,
            },
        }
    }
}

struct Checker<'a> {
    may_write: &'a dyn Fn(&RoleSet) -> bool,
    errors: Vec<FieldError>,
}

impl Checker<'_> {
    fn push(&mut self, pointer: &str, code: ErrorCode, detail: impl Into<String>) {
        self.errors.push(error(pointer, code, detail));
    }

    fn check_object(
        &mut self,
        fields: &Fields,
        map: &mut Map<String, Value>,
        pointer: &str,
        rules: Rules,
        top_level: bool,
    ) {
        for (key, value) in map.iter_mut() {
            let at = child_pointer(pointer, key);
            // A stored document carries its own id, version, … next to the declared fields.
            if top_level && MANAGED_FIELDS.contains(&key.as_str()) {
                if rules.refuse_managed {
                    self.push(&at, ErrorCode::ReadOnly, "is set by the server");
                }
                continue;
            }
            let Some(field) = fields.get(key) else {
                self.push(&at, ErrorCode::UnknownField, "unknown field");
                continue;
            };
            if rules.check_access {
                if field.read_only {
                    self.push(&at, ErrorCode::ReadOnly, "is read-only");
                    continue;
                }
                if let Some(write) = &field.acl.write
                    && !(self.may_write)(write)
                {
                    self.push(
                        &at,
                        ErrorCode::ForbiddenField,
                        "may not be written by the caller",
                    );
                    continue;
                }
            }
            self.check_entry(field, value, &at, rules);
        }
        if rules.partial {
            return;
        }
        for (name, field) in fields {
            if map.contains_key(name) {
                continue;
            }
            let at = child_pointer(pointer, name);
            match &field.default {
                Some(default) if rules.apply_defaults => {
                    // Checking the default again fills the defaults nested inside it.
                    let mut value = default.clone();
                    self.check_entry(field, &mut value, &at, rules);
                    map.insert(name.clone(), value);
                }
                _ if field.required => self.push(&at, ErrorCode::Required, "is required"),
                _ => {}
            }
        }
    }

    /// Checks a value that is present under a key or at an array index, `null` included.
    fn check_entry(&mut self, field: &Field, value: &mut Value, pointer: &str, rules: Rules) {
        if !value.is_null() {
            self.check_value(field, value, pointer, rules);
            return;
        }
        let problem = if rules.partial {
            // In a merge patch `null` removes the field, which only a required field forbids.
            field
                .required
                .then_some((ErrorCode::Required, "is required and cannot be cleared"))
        } else if field.nullable {
            None
        } else if field.required {
            Some((ErrorCode::Required, "is required"))
        } else {
            Some((ErrorCode::Type, "must not be null"))
        };
        if let Some((code, detail)) = problem {
            self.push(pointer, code, detail);
        }
    }

    fn check_value(&mut self, field: &Field, value: &mut Value, pointer: &str, rules: Rules) {
        match (&field.kind, value) {
            (FieldKind::Object(fields), Value::Object(map)) => {
                self.check_object(fields, map, pointer, rules, false);
            }
            (FieldKind::Array(item), Value::Array(items)) => {
                self.check_items(field, item, items, pointer, rules);
            }
            (kind, value) if has_type(kind, value) => {
                normalize(kind, value);
                self.check_scalar(field, value, pointer);
            }
            (kind, _) => self.push(pointer, ErrorCode::Type, expected(kind)),
        }
    }

    fn check_items(
        &mut self,
        field: &Field,
        item: &Field,
        items: &mut [Value],
        pointer: &str,
        rules: Rules,
    ) {
        let count = items.len();
        if let Some(min) = field.min_items
            && count < min
        {
            let detail = format!("must have at least {min} {}", plural(min, "item"));
            self.push(pointer, ErrorCode::MinItems, detail);
        }
        if let Some(max) = field.max_items
            && count > max
        {
            let detail = format!("must have at most {max} {}", plural(max, "item"));
            self.push(pointer, ErrorCode::MaxItems, detail);
        }
        let rules = Rules {
            partial: false,
            ..rules
        };
        for (index, value) in items.iter_mut().enumerate() {
            self.check_entry(item, value, &format!("{pointer}/{index}"), rules);
        }
    }

    /// Checks the constraints of a value already known to have the field's JSON type.
    fn check_scalar(&mut self, field: &Field, value: &Value, pointer: &str) {
        if let Some(allowed) = &field.enum_values
            && !allowed.iter().any(|candidate| same_value(candidate, value))
        {
            let list: Vec<String> = allowed.iter().map(display_value).collect();
            let detail = format!("is not one of {}", list.join(", "));
            self.push(pointer, ErrorCode::Enum, detail);
        }
        match value {
            Value::Number(number) => {
                if let Some(number) = number.as_f64() {
                    self.check_bounds(field, number, pointer);
                }
            }
            Value::String(text) => self.check_text(field, text, pointer),
            _ => {}
        }
    }

    fn check_bounds(&mut self, field: &Field, number: f64, pointer: &str) {
        if let Some(min) = field.min
            && number < min
        {
            self.push(
                pointer,
                ErrorCode::Minimum,
                format!("must be at least {min}"),
            );
        }
        if let Some(max) = field.max
            && number > max
        {
            self.push(
                pointer,
                ErrorCode::Maximum,
                format!("must be at most {max}"),
            );
        }
    }

    fn check_text(&mut self, field: &Field, text: &str, pointer: &str) {
        if let Some(detail) = format_problem(&field.kind, text) {
            self.push(pointer, ErrorCode::Format, detail);
        }
        // Lengths count characters, not bytes, as the HTTP contract says.
        let length = text.chars().count();
        if let Some(min) = field.min
            && (length as f64) < min
        {
            let detail = format!(
                "must be at least {min} {}",
                plural(length_bound(min), "character")
            );
            self.push(pointer, ErrorCode::MinLength, detail);
        }
        if let Some(max) = field.max
            && (length as f64) > max
        {
            let detail = format!(
                "must be at most {max} {}",
                plural(length_bound(max), "character")
            );
            self.push(pointer, ErrorCode::MaxLength, detail);
        }
        if let Some(pattern) = &field.pattern
            && !pattern.is_match(text)
        {
            let detail = format!("does not match the pattern {}", pattern.as_str());
            self.push(pointer, ErrorCode::Pattern, detail);
        }
    }
}

fn error(pointer: &str, code: ErrorCode, detail: impl Into<String>) -> FieldError {
    FieldError {
        pointer: pointer.to_owned(),
        code,
        detail: detail.into(),
    }
}

/// Appends `key` to `pointer`, escaped as RFC 6901 requires (`~` → `~0`, `/` → `~1`).
fn child_pointer(pointer: &str, key: &str) -> String {
    format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// Enum membership compares numbers by value, so `1.0` matches an allowed `1`.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => a == b,
    }
}

/// Enum values as a reader writes them: strings without quotes.
pub fn display_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        noun.to_owned()
    } else {
        format!("{noun}s")
    }
}

/// The loader only accepts whole, non-negative lengths, so the cast is exact.
fn length_bound(bound: f64) -> usize {
    bound as usize
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::Registry;

    const SCHEMA: &str = r#"
fields:
  title:    {type: string, required: true, min: 2, max: 5, pattern: "^[a-z]+$"}
  count:    {type: integer, min: 0, max: 10}
  ratio:    {type: number, min: -1.5, max: 1.5}
  flag:     {type: boolean}
  at:       {type: datetime}
  day:      {type: date}
  key:      {type: uuid}
  mail:     {type: email}
  site:     {type: url}
  parent:   {type: ref, to: t.doc}
  status:   {type: string, enum: [draft, published, retired]}
  level:    {type: integer, enum: [1, 2, 3]}
  secret:   {type: string, acl: {write: staff}}
  computed: {type: string, read_only: true}
  note:     {type: string, nullable: true}
  tags:     {type: array, items: {type: string, max: 3}, min_items: 1, max_items: 2}
  size:
    type: object
    fields:
      width: {type: number, min: 0, required: true}
      unit:  {type: string, default: cm}
  lines:
    type: array
    items:
      type: object
      fields:
        qty: {type: integer, required: true, min: 1}
"#;

    const UUID: &str = "0190f5a4-7b1c-7c3e-9a55-3f1e2d4c5b6a";

    fn schema() -> DocumentSchema {
        let registry = Registry::from_sources(&[("t", "doc", SCHEMA)]).unwrap();
        registry.get("t", "doc").unwrap().as_ref().clone()
    }

    fn allow_all(_: &RoleSet) -> bool {
        true
    }

    /// `(pointer, code)` of every error, or an empty list when the body is valid.
    fn check(body: &Value, mode: Mode) -> Vec<(String, ErrorCode)> {
        match schema().validate(body, mode, &allow_all) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| (e.pointer, e.code)).collect(),
        }
    }

    fn one(pointer: &str, code: ErrorCode) -> Vec<(String, ErrorCode)> {
        vec![(pointer.to_owned(), code)]
    }

    /// A valid create body with `key` set to `value`.
    fn with(key: &str, value: Value) -> Value {
        let mut body = json!({"title": "abc"});
        body[key] = value;
        body
    }

    #[test]
    fn every_kind_accepts_its_type_and_rejects_another() {
        let cases = [
            ("title", json!("abcd"), json!(12)),
            ("count", json!(3), json!("3")),
            ("count", json!(3.0), json!(2.5)),
            ("ratio", json!(0.25), json!("x")),
            ("flag", json!(false), json!(1)),
            ("at", json!("2024-05-01T12:00:00+02:00"), json!(5)),
            ("day", json!("2024-05-01"), json!(true)),
            ("key", json!(UUID), json!(1)),
            ("mail", json!("ada@example.com"), json!(true)),
            ("site", json!("https://example.com/a?b=c"), json!([])),
            ("parent", json!(UUID), json!(7)),
            ("tags", json!(["a", "b"]), json!("a")),
            ("size", json!({"width": 2}), json!([1])),
            ("lines", json!([{"qty": 1}]), json!({"qty": 1})),
        ];
        for (key, good, bad) in cases {
            assert_eq!(
                check(&with(key, good.clone()), Mode::Create),
                vec![],
                "{key}: {good}"
            );
            let pointer = format!("/{key}");
            assert_eq!(
                check(&with(key, bad.clone()), Mode::Create),
                one(&pointer, ErrorCode::Type),
                "{key}: {bad}"
            );
        }
    }

    #[test]
    fn integers_must_be_whole_and_fit_64_bits() {
        assert_eq!(
            check(&with("count", json!(1e19)), Mode::Create),
            one("/count", ErrorCode::Type)
        );
        assert_eq!(
            check(&with("count", json!(u64::MAX)), Mode::Create),
            one("/count", ErrorCode::Type)
        );
        assert_eq!(check(&with("count", json!(1e0)), Mode::Create), vec![]);
    }

    #[test]
    fn each_format_kind_rejects_malformed_strings() {
        let cases = [
            ("at", "2024-05-01"),
            ("at", "yesterday"),
            ("day", "2024-5-1"),
            ("day", "2024-02-30"),
            ("key", "not-a-uuid"),
            ("key", "0190f5a47b1c7c3e9a553f1e2d4c5b6a"),
            ("mail", "not-an-email"),
            ("mail", "Ada <ada@example.com>"),
            ("site", "ftp://example.com/file"),
            ("site", "/relative/path"),
            ("parent", "123"),
        ];
        for (key, value) in cases {
            let pointer = format!("/{key}");
            assert_eq!(
                check(&with(key, json!(value)), Mode::Create),
                one(&pointer, ErrorCode::Format),
                "{key}: {value}"
            );
        }
    }

    #[test]
    fn each_constraint_reports_its_code_and_detail() {
        let cases = [
            ("count", json!(-1), ErrorCode::Minimum, "must be at least 0"),
            ("count", json!(11), ErrorCode::Maximum, "must be at most 10"),
            (
                "ratio",
                json!(-2),
                ErrorCode::Minimum,
                "must be at least -1.5",
            ),
            (
                "title",
                json!("a"),
                ErrorCode::MinLength,
                "must be at least 2 characters",
            ),
            (
                "title",
                json!("abcdef"),
                ErrorCode::MaxLength,
                "must be at most 5 characters",
            ),
            (
                "title",
                json!("ABC"),
                ErrorCode::Pattern,
                "does not match the pattern ^[a-z]+$",
            ),
            (
                "status",
                json!("gone"),
                ErrorCode::Enum,
                "is not one of draft, published, retired",
            ),
            ("level", json!(4), ErrorCode::Enum, "is not one of 1, 2, 3"),
            (
                "tags",
                json!([]),
                ErrorCode::MinItems,
                "must have at least 1 item",
            ),
            (
                "tags",
                json!(["a", "b", "c"]),
                ErrorCode::MaxItems,
                "must have at most 2 items",
            ),
            ("nope", json!(1), ErrorCode::UnknownField, "unknown field"),
            ("computed", json!("x"), ErrorCode::ReadOnly, "is read-only"),
            (
                "id",
                json!(UUID),
                ErrorCode::ReadOnly,
                "is set by the server",
            ),
            ("flag", Value::Null, ErrorCode::Type, "must not be null"),
            ("title", Value::Null, ErrorCode::Required, "is required"),
        ];
        for (key, value, code, detail) in cases {
            let errors = schema()
                .validate(&with(key, value), Mode::Create, &allow_all)
                .unwrap_err();
            let expected = FieldError {
                pointer: format!("/{key}"),
                code,
                detail: detail.to_owned(),
            };
            assert_eq!(errors, vec![expected]);
        }
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert_eq!(
            check(&with("title", json!("ééééé")), Mode::Create),
            one("/title", ErrorCode::Pattern)
        );
        assert_eq!(check(&with("tags", json!(["äöü"])), Mode::Create), vec![]);
    }

    #[test]
    fn enum_matches_numbers_by_value_and_nullable_accepts_null() {
        assert_eq!(check(&with("level", json!(2.0)), Mode::Create), vec![]);
        assert_eq!(check(&with("note", Value::Null), Mode::Create), vec![]);
    }

    #[test]
    fn missing_required_field_is_reported() {
        assert_eq!(
            check(&json!({}), Mode::Create),
            one("/title", ErrorCode::Required)
        );
        assert_eq!(
            check(&json!({}), Mode::Stored),
            one("/title", ErrorCode::Required)
        );
    }

    #[test]
    fn write_acl_is_decided_by_the_caller_supplied_check() {
        let schema = schema();
        let deny = |_: &RoleSet| false;
        let body = with("secret", json!("s"));
        let errors = schema.validate(&body, Mode::Create, &deny).unwrap_err();
        assert_eq!(errors[0].pointer, "/secret");
        assert_eq!(errors[0].code, ErrorCode::ForbiddenField);
        let asked = std::cell::RefCell::new(Vec::new());
        let record = |roles: &RoleSet| {
            asked.borrow_mut().push(roles.clone());
            true
        };
        assert!(schema.validate(&body, Mode::Patch, &record).is_ok());
        assert_eq!(
            *asked.borrow(),
            vec![RoleSet(vec![crate::schema::Role::Staff])]
        );
        assert!(schema.validate(&body, Mode::Stored, &deny).is_ok());
    }

    #[test]
    fn nested_objects_and_array_items_have_their_own_pointers() {
        let body = with("size", json!({"width": -1, "depth": 3}));
        assert_eq!(
            check(&body, Mode::Create),
            vec![
                ("/size/depth".into(), ErrorCode::UnknownField),
                ("/size/width".into(), ErrorCode::Minimum),
            ]
        );
        assert_eq!(
            check(&with("size", json!({})), Mode::Create),
            one("/size/width", ErrorCode::Required)
        );
        assert_eq!(
            check(&with("tags", json!(["long", 3])), Mode::Create),
            vec![
                ("/tags/0".into(), ErrorCode::MaxLength),
                ("/tags/1".into(), ErrorCode::Type),
            ]
        );
        assert_eq!(
            check(
                &with("lines", json!([{"qty": 1}, {"qty": 0}, {}])),
                Mode::Create
            ),
            vec![
                ("/lines/1/qty".into(), ErrorCode::Minimum),
                ("/lines/2/qty".into(), ErrorCode::Required),
            ]
        );
    }

    #[test]
    fn pointers_escape_slash_and_tilde() {
        assert_eq!(
            check(&with("a/b~c", json!(1)), Mode::Create),
            one("/a~1b~0c", ErrorCode::UnknownField)
        );
    }

    #[test]
    fn all_errors_come_at_once_in_body_then_declaration_order() {
        let body = json!({"count": -1, "mail": "x", "extra": true, "tags": []});
        assert_eq!(
            check(&body, Mode::Create),
            vec![
                ("/count".into(), ErrorCode::Minimum),
                ("/extra".into(), ErrorCode::UnknownField),
                ("/mail".into(), ErrorCode::Format),
                ("/tags".into(), ErrorCode::MinItems),
                ("/title".into(), ErrorCode::Required),
            ]
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_one_type_error() {
        assert_eq!(check(&json!([1]), Mode::Create), one("", ErrorCode::Type));
    }

    #[test]
    fn create_fills_defaults_including_nested_ones() {
        let doc = schema()
            .validate(&with("size", json!({"width": 2})), Mode::Create, &allow_all)
            .unwrap();
        assert_eq!(
            doc,
            json!({"title": "abc", "size": {"width": 2, "unit": "cm"}})
        );
        let doc = schema()
            .validate(
                &with("lines", json!([{"qty": 2}])),
                Mode::Create,
                &allow_all,
            )
            .unwrap();
        assert_eq!(doc["lines"], json!([{"qty": 2}]));
    }

    #[test]
    fn patch_is_partial_and_null_clears_only_optional_fields() {
        let schema = schema();
        let patch = json!({"count": null, "note": null, "size": {"unit": "m"}});
        assert_eq!(
            schema.validate(&patch, Mode::Patch, &allow_all),
            Ok(patch.clone())
        );
        assert_eq!(
            check(&json!({"title": null}), Mode::Patch),
            one("/title", ErrorCode::Required)
        );
        assert_eq!(
            check(&json!({"size": {"width": null}}), Mode::Patch),
            one("/size/width", ErrorCode::Required)
        );
        // Arrays are replaced whole, so their items are complete values.
        assert_eq!(
            check(&json!({"lines": [{}]}), Mode::Patch),
            one("/lines/0/qty", ErrorCode::Required)
        );
        assert_eq!(
            check(&json!({"computed": "x"}), Mode::Patch),
            one("/computed", ErrorCode::ReadOnly)
        );
    }

    #[test]
    fn stored_documents_skip_access_checks_and_managed_fields() {
        let doc = json!({"id": UUID, "version": 3, "title": "abc", "computed": "server"});
        assert_eq!(check(&doc, Mode::Stored), vec![]);
        assert_eq!(
            check(&json!({"title": "abc", "size": {}}), Mode::Stored),
            one("/size/width", ErrorCode::Required)
        );
    }

    #[test]
    fn the_petstore_product_validates_like_the_docs_say() {
        let registry = crate::schema::load::tests::petstore();
        let product = registry.get("petstore", "product").unwrap();
        let staff = |roles: &RoleSet| roles.0.contains(&crate::schema::Role::Staff);
        let body = json!({"name": "Bowl", "price": 4.5, "tags": ["steel"], "cost": 1});
        let doc = product.validate(&body, Mode::Create, &staff).unwrap();
        assert_eq!(doc["stock"], json!(0));
        assert_eq!(doc["status"], json!("draft"));
        let errors = product
            .validate(&body, Mode::Create, &|_| false)
            .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].pointer.as_str(), errors[0].code),
            ("/cost", ErrorCode::ForbiddenField)
        );
        let bad = json!({"name": "Bowl", "price": -1, "sku": "ab", "status": "sold"});
        let codes: Vec<ErrorCode> = product
            .validate(&bad, Mode::Create, &staff)
            .unwrap_err()
            .into_iter()
            .map(|e| e.code)
            .collect();
        assert_eq!(
            codes,
            [ErrorCode::Minimum, ErrorCode::Pattern, ErrorCode::Enum]
        );
    }

    #[test]
    fn errors_serialize_with_snake_case_codes() {
        let error = FieldError {
            pointer: "/price".into(),
            code: ErrorCode::MinLength,
            detail: "d".into(),
        };
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            json!({"pointer": "/price", "code": "min_length", "detail": "d"})
        );
        assert_eq!(
            serde_json::to_value(ErrorCode::ForbiddenField).unwrap(),
            json!("forbidden_field")
        );
    }

    #[test]
    fn nul_characters_are_refused_in_every_string_kind() {
        assert_eq!(
            check(&with("mail", json!("a\u{0}@b.com")), Mode::Create),
            one("/mail", ErrorCode::Format)
        );
        assert_eq!(
            check(&with("status", json!("dra\u{0}ft")), Mode::Patch)
                .first()
                .map(|e| e.0.as_str()),
            Some("/status")
        );
        assert_eq!(
            check(&json!({"note": "x\u{0}"}), Mode::Patch),
            one("/note", ErrorCode::Format)
        );
    }

    #[test]
    fn values_take_their_canonical_spelling() {
        let normalized = schema()
            .validate(
                &json!({"count": 3.0, "ratio": 1.0, "key": "0190C4F2-0000-7000-8000-00000000000A"}),
                Mode::Patch,
                &allow_all,
            )
            .unwrap();
        assert_eq!(
            normalized,
            json!({"count": 3, "ratio": 1, "key": "0190c4f2-0000-7000-8000-00000000000a"})
        );
        assert!(normalized["count"].is_i64() && normalized["ratio"].is_i64());
    }

    #[test]
    fn whole_numbers_become_the_integers_postgres_renders() {
        assert_eq!(whole_number(1e16), Some(json!(10_000_000_000_000_000_i64)));
        assert_eq!(
            whole_number(1e19),
            Some(json!(10_000_000_000_000_000_000_u64))
        );
        assert_eq!(whole_number(-0.0), Some(json!(0)));
        assert_eq!(
            whole_number(-9.223_372_036_854_776e18),
            Some(json!(i64::MIN))
        );
        assert_eq!(whole_number(1.844_674_407_370_955_2e19), None);
        assert_eq!(whole_number(1e21), None);
        assert_eq!(whole_number(0.1), None);
    }
}
