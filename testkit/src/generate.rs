//! Random valid documents and params, from their YAML, as proptest strategies (for property
//! tests, which shrink a failing case) or drawn once ([`random_document`]). Values reach for the
//! edges their declaration allows: bounds themselves, any Unicode text within a length,
//! subnormal and huge numbers, strings drawn from a `pattern` (anchors `^…$` at its ends are
//! allowed; other look-arounds are not).
//!
//! Every required field is present, an optional one sometimes. `read_only` fields (a command
//! sets them) and `ref` fields (they need a document that exists: add one yourself) are left
//! out. Fields with their own `acl.write` are included: create as a caller who may write them.

use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rand::Rng;
use serde_json::{Map, Value};

use herald_bus::schema::{DocumentSchema, Field, FieldKind, Fields};

/// Why no value can be generated for a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot generate `{pointer}`: {reason}")]
pub struct GenerateError {
    pub pointer: String,
    pub reason: String,
}

/// The documents `schema` accepts on create.
///
/// # Errors
/// A field whose constraints no value meets, or a `pattern` no string can be drawn from.
pub fn document(schema: &DocumentSchema) -> Result<BoxedStrategy<Value>, GenerateError> {
    object(&schema.fields, "")
}

/// The params a command with these `params` accepts.
///
/// # Errors
/// As [`document`].
pub fn params(fields: &Fields) -> Result<BoxedStrategy<Value>, GenerateError> {
    object(fields, "")
}

/// One random document `schema` accepts on create, drawn with `rng` (seed it for a case that
/// repeats).
///
/// # Errors
/// As [`document`], or when drawing fails.
pub fn random_document(
    schema: &DocumentSchema,
    rng: &mut impl Rng,
) -> Result<Map<String, Value>, GenerateError> {
    let strategy = document(schema)?;
    let mut seed = [0u8; 32];
    rng.fill(&mut seed);
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
    );
    let drawn = strategy.new_tree(&mut runner).map_err(|e| GenerateError {
        pointer: String::new(),
        reason: e.to_string(),
    })?;
    Ok(drawn.current().as_object().cloned().unwrap_or_default())
}

impl crate::TestApp {
    /// A random document of `collection` (`petstore.product`) that its YAML accepts on create.
    ///
    /// # Panics
    /// When the collection is not declared, or a field's constraints cannot be met.
    #[track_caller]
    pub fn random_document(&self, collection: &str) -> Value {
        let Some(schema) = self.registry.named(collection) else {
            panic!("`{collection}` is not declared");
        };
        match random_document(schema, &mut rand::rng()) {
            Ok(document) => Value::Object(document),
            Err(error) => panic!("{error}"),
        }
    }
}

/// An object of `fields`: every required field, and each optional one present or not.
fn object(fields: &Fields, prefix: &str) -> Result<BoxedStrategy<Value>, GenerateError> {
    let mut entries: Vec<BoxedStrategy<Option<(String, Value)>>> = Vec::new();
    for (name, field) in fields {
        if field.read_only || matches!(field.kind, FieldKind::Ref { .. }) {
            continue;
        }
        let owned = name.clone();
        let value =
            value(field, &format!("{prefix}/{name}"))?.prop_map(move |v| Some((owned.clone(), v)));
        entries.push(if field.required {
            value.boxed()
        } else {
            prop_oneof![Just(None), value].boxed()
        });
    }
    Ok(entries
        .prop_map(|entries| Value::Object(entries.into_iter().flatten().collect::<Map<_, _>>()))
        .boxed())
}

/// A value for `field` as a client may write it: within its constraints, of every shape its
/// kind allows.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
fn value(field: &Field, pointer: &str) -> Result<BoxedStrategy<Value>, GenerateError> {
    let fail = |reason: String| GenerateError {
        pointer: pointer.to_owned(),
        reason,
    };
    if let Some(allowed) = field.enum_values.clone().filter(|a| !a.is_empty()) {
        return Ok(proptest::sample::select(allowed).boxed());
    }
    let (low, high) = (field.min.unwrap_or(f64::MIN), field.max.unwrap_or(f64::MAX));
    if low > high {
        return Err(fail("its min is above its max".into()));
    }
    let pattern = |regex: &str| {
        proptest::string::string_regex(regex)
            .map(|strings| strings.prop_map(Value::from).boxed())
            .map_err(|e| fail(format!("its pattern cannot be drawn from: {e}")))
    };
    Ok(match &field.kind {
        FieldKind::String => match &field.pattern {
            Some(regex) => {
                let core = regex.as_str();
                let core = core.strip_prefix('^').unwrap_or(core);
                pattern(core.strip_suffix('$').unwrap_or(core))?
            }
            None => {
                let least = field.min.map_or(0, |m| m as usize);
                let most = field.max.map_or(64, |m| m as usize).min(300).max(least);
                proptest::collection::vec(
                    any::<char>().prop_filter("no NUL", |c| *c != '\0'),
                    least..=most,
                )
                .prop_map(|chars| Value::from(chars.into_iter().collect::<String>()))
                .boxed()
            }
        },
        FieldKind::Integer => {
            let (low, high) = (
                low.ceil().max(i64::MIN as f64) as i64,
                high.floor().min(i64::MAX as f64) as i64,
            );
            prop_oneof![
                (low..=high).prop_map(Value::from),
                proptest::sample::select(vec![low, high]).prop_map(Value::from),
            ]
            .boxed()
        }
        FieldKind::Number if field.min.is_some() && field.max.is_some() => prop_oneof![
            (low..=high).prop_map(Value::from),
            proptest::sample::select(vec![low, high]).prop_map(Value::from),
        ]
        .boxed(),
        FieldKind::Number => {
            let doubles = prop_oneof![
                any::<f64>(),
                proptest::num::f64::SUBNORMAL | proptest::num::f64::POSITIVE,
                proptest::sample::select(vec![f64::MAX, f64::MIN_POSITIVE, 5e-324, 1e21, 1e22]),
            ];
            doubles
                .prop_filter("within bounds", move |f| {
                    f.is_finite() && *f >= low && *f <= high
                })
                .prop_map(Value::from)
                .boxed()
        }
        FieldKind::Boolean => any::<bool>().prop_map(Value::from).boxed(),
        FieldKind::Date => (2000..2100u32, 1..=12u32, 1..=28u32)
            .prop_map(|(y, m, d)| Value::from(format!("{y:04}-{m:02}-{d:02}")))
            .boxed(),
        FieldKind::Datetime => (
            2000..2100u32,
            1..=12u32,
            1..=28u32,
            0..86_400u32,
            0..1_000_000u32,
        )
            .prop_map(|(y, m, d, s, micros)| {
                let (h, min, sec) = (s / 3600, s / 60 % 60, s % 60);
                Value::from(format!(
                    "{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{sec:02}.{micros:06}Z"
                ))
            })
            .boxed(),
        FieldKind::Uuid => any::<u128>()
            .prop_map(|bits| Value::from(uuid::Uuid::from_u128(bits).to_string()))
            .boxed(),
        FieldKind::Email => pattern("[a-z0-9]{1,12}([._-][a-z0-9]{1,12})?@example\\.test")?,
        FieldKind::Url => pattern("https://example\\.test/[a-z0-9/_-]{0,30}")?,
        FieldKind::Password => pattern("[A-Za-z0-9 !-]{8,24}")?,
        FieldKind::Object(nested) => object(nested, pointer)?,
        FieldKind::Array(item) => {
            let least = field.min_items.unwrap_or(0);
            let most = field.max_items.unwrap_or(5).min(10).max(least);
            proptest::collection::vec(value(item, &format!("{pointer}/0"))?, least..=most)
                .prop_map(Value::from)
                .boxed()
        }
        FieldKind::Ref { .. } => return Err(fail("a ref needs a document that exists".into())),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use herald_bus::schema::{Mode, Registry};
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use serde_json::Value;

    use super::random_document;

    const THING: &str = r#"
fields:
  name: {type: string, required: true, min: 3, max: 8}
  code: {type: string, required: true, pattern: "^[A-Z]{2}-[0-9]{3}$"}
  size: {type: integer, min: 1, max: 5, required: true}
  price: {type: number, min: 0.5, max: 2}
  weight: {type: number, min: 0}
  kind: {type: string, enum: [a, b]}
  tags: {type: array, items: {type: string, max: 4}, min_items: 1, max_items: 2}
  when: {type: datetime}
  day: {type: date}
  mail: {type: email}
  site: {type: url}
  key: {type: uuid}
  flag: {type: boolean}
  box: {type: object, fields: {w: {type: integer, min: 0, required: true}}}
  state: {type: string, read_only: true, required: true, default: new}
"#;

    #[test]
    fn every_generated_document_is_valid_on_create() {
        let registry = Registry::from_sources(&[("shop", "thing", THING)]).unwrap();
        let schema = registry.get("shop", "thing").unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..300 {
            let body = Value::Object(random_document(schema, &mut rng).unwrap());
            let checked = schema.validate(&body, Mode::Create, &|_| true);
            assert!(checked.is_ok(), "{body}: {checked:?}");
            assert!(body.get("state").is_none(), "read_only fields are left out");
        }
    }
}
