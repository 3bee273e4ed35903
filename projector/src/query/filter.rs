//! One filter parameter, `<field>=[not.]<operator>.<value>`, read with the field's type and
//! turned into a SQL condition whose values are all bind parameters.

use herald_bus::schema::query::query_value;
use herald_bus::schema::{Field, FieldKind};
use serde_json::Value;

use super::page::Params;
use super::target::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Like,
    Ilike,
    Is,
    Cs,
}

impl Operator {
    const ALL: [(&'static str, Operator); 11] = [
        ("eq", Operator::Eq),
        ("neq", Operator::Neq),
        ("gt", Operator::Gt),
        ("gte", Operator::Gte),
        ("lt", Operator::Lt),
        ("lte", Operator::Lte),
        ("in", Operator::In),
        ("like", Operator::Like),
        ("ilike", Operator::Ilike),
        ("is", Operator::Is),
        ("cs", Operator::Cs),
    ];

    fn parse(name: &str) -> Option<Operator> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, op)| *op)
    }

    fn name(self) -> &'static str {
        match self {
            Operator::Eq => "eq",
            Operator::Neq => "neq",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::In => "in",
            Operator::Like => "like",
            Operator::Ilike => "ilike",
            Operator::Is => "is",
            Operator::Cs => "cs",
        }
    }

    /// The SQL operator.
    fn sql(self) -> &'static str {
        match self {
            Operator::Eq => "=",
            Operator::Neq => "<>",
            Operator::Gt => ">",
            Operator::Gte => ">=",
            Operator::Lt => "<",
            Operator::Lte => "<=",
            Operator::In => "= ANY",
            Operator::Like => "LIKE",
            Operator::Ilike => "ILIKE",
            Operator::Is => "IS",
            Operator::Cs => "@>",
        }
    }
}

/// Which operators a field of `kind` takes: comparisons where its values are ordered, patterns
/// on free text, containment on arrays; `is` everywhere.
fn operators_for(field: &Field) -> &'static [Operator] {
    use Operator as O;
    match &field.kind {
        FieldKind::Array(_) => &[O::Cs, O::Is],
        FieldKind::Boolean | FieldKind::Uuid | FieldKind::Ref { .. } => {
            &[O::Eq, O::Neq, O::In, O::Is]
        }
        kind if kind.is_text() && field.enum_values.is_some() => &[O::Eq, O::Neq, O::In, O::Is],
        kind if kind.is_text() => &[
            O::Eq,
            O::Neq,
            O::Gt,
            O::Gte,
            O::Lt,
            O::Lte,
            O::In,
            O::Like,
            O::Ilike,
            O::Is,
        ],
        _ => &[O::Eq, O::Neq, O::Gt, O::Gte, O::Lt, O::Lte, O::In, O::Is],
    }
}

/// The operators a filter on `field` takes, by name (for the API description).
pub fn operator_names(field: &Field) -> Vec<&'static str> {
    operators_for(field).iter().map(|o| o.name()).collect()
}

/// The most values `in` and `cs` take.
const MAX_VALUES: usize = 100;

#[derive(Debug, Clone)]
enum Operand {
    /// A value as the text Postgres reads it in (cast to the column type in SQL).
    Value(String),
    Values(Vec<String>),
    /// `is.null`, `is.true`, `is.false`.
    Is(&'static str),
}

/// A parsed filter, ready to become SQL.
#[derive(Debug, Clone)]
pub struct Filter {
    expr: String,
    sql_type: String,
    operator: Operator,
    negated: bool,
    operand: Operand,
}

impl Filter {
    /// Parses the value of a filter parameter on `target` (already known to be filterable).
    /// The error is the detail of a `400` naming the parameter.
    pub fn parse(target: &Target, raw: &str) -> Result<Filter, String> {
        let (negated, rest) = match raw.strip_prefix("not.") {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let (name, text) = rest
            .split_once('.')
            .ok_or_else(|| "expected <operator>.<value>, e.g. eq.5 or not.in.(a,b)".to_owned())?;
        let operator = Operator::parse(name).ok_or_else(|| {
            let names: Vec<&str> = Operator::ALL.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown operator `{name}` (expected {}, optionally after not.)",
                names.join(", ")
            )
        })?;
        let field = &target.field;
        if !operators_for(field).contains(&operator) {
            return Err(format!(
                "`{name}` does not apply to this {} field (it takes {})",
                field.kind.name(),
                operator_names(field).join(", ")
            ));
        }
        let operand = match operator {
            Operator::Is => Operand::Is(match text {
                "null" => "NULL",
                "true" if matches!(field.kind, FieldKind::Boolean) => "TRUE",
                "false" if matches!(field.kind, FieldKind::Boolean) => "FALSE",
                _ if matches!(field.kind, FieldKind::Boolean) => {
                    return Err("`is` takes null, true or false".into());
                }
                _ => return Err("`is` takes null".into()),
            }),
            Operator::In => {
                let items = split_list(text, '(', ')')?;
                let values = items
                    .iter()
                    .map(|item| sql_text(field, item))
                    .collect::<Result<_, _>>()?;
                Operand::Values(values)
            }
            Operator::Cs => {
                let FieldKind::Array(item) = &field.kind else {
                    return Err("`cs` applies to arrays".into());
                };
                let items = split_list(text, '{', '}')?;
                let values = items
                    .iter()
                    .map(|text| query_value(item, text))
                    .collect::<Result<Vec<_>, _>>()?;
                Operand::Value(Value::Array(values).to_string())
            }
            Operator::Like | Operator::Ilike => {
                if text.contains('\0') {
                    return Err("must not contain NUL characters".into());
                }
                let escapes = text.chars().rev().take_while(|c| *c == '\\').count();
                if escapes % 2 == 1 {
                    return Err("must not end with the escape character \\".into());
                }
                // `*` is the wildcard that needs no escaping in a URL.
                Operand::Value(text.replace('*', "%"))
            }
            _ => Operand::Value(sql_text(field, text)?),
        };
        Ok(Filter {
            expr: target.expr.clone(),
            sql_type: target.sql_type.clone(),
            operator,
            negated,
            operand,
        })
    }

    /// The condition, its values pushed onto `params`.
    pub fn sql(&self, params: &mut Params) -> String {
        let (expr, ty) = (&self.expr, &self.sql_type);
        let op = self.operator.sql();
        let condition = match &self.operand {
            Operand::Is(what) => format!("{expr} IS {what}"),
            Operand::Values(values) => {
                let list = params.list(values.clone());
                format!("{expr} {op}(({list}::text[])::{ty}[])")
            }
            Operand::Value(value) => {
                // Patterns are text and containment a JSON array, whatever the column holds.
                let cast = match self.operator {
                    Operator::Like | Operator::Ilike => "text",
                    Operator::Cs => "jsonb",
                    _ => ty,
                };
                format!("{expr} {op} ({}::text)::{cast}", params.text(value.clone()))
            }
        };
        if self.negated {
            format!("NOT ({condition})")
        } else {
            condition
        }
    }
}

/// `text` as a value of `field`, written the way Postgres reads it back.
fn sql_text(field: &Field, text: &str) -> Result<String, String> {
    Ok(match query_value(field, text)? {
        Value::String(s) => s,
        Value::Number(n) if matches!(field.kind, FieldKind::Integer) => match n.as_i64() {
            Some(i) => i.to_string(),
            // `3.0` and the like: whole (checked above) and within bigint.
            None => format!("{:.0}", n.as_f64().unwrap_or_default()),
        },
        other => other.to_string(),
    })
}

/// The items of `(a,b,"c,d")` (with `open` and `close` as the brackets). An item may be
/// double-quoted to hold commas, brackets or quotes (`\"` and `\\` escape inside quotes).
fn split_list(text: &str, open: char, close: char) -> Result<Vec<String>, String> {
    let shape = || format!("expected a list in the form {open}a,b,c{close}");
    let inner = text
        .strip_prefix(open)
        .and_then(|t| t.strip_suffix(close))
        .ok_or_else(shape)?;
    if inner.is_empty() {
        return Err("needs at least one value".into());
    }
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    // Each turn reads one item and the comma after it; a trailing comma leaves an empty item.
    let mut more = true;
    while more {
        more = false;
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => item.push(chars.next().ok_or_else(shape)?),
                    Some(c) => item.push(c),
                    None => return Err("a quoted item is not closed".into()),
                }
            }
            match chars.next() {
                None => {}
                Some(',') => more = true,
                Some(_) => return Err(shape()),
            }
        } else {
            for c in chars.by_ref() {
                if c == ',' {
                    more = true;
                    break;
                }
                item.push(c);
            }
        }
        items.push(item);
        if items.len() > MAX_VALUES {
            return Err(format!("takes at most {MAX_VALUES} values"));
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_commas_outside_quotes() {
        assert_eq!(
            split_list("(a,b)", '(', ')'),
            Ok(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            split_list("(a,)", '(', ')'),
            Ok(vec!["a".into(), "".into()])
        );
        assert_eq!(
            split_list("(,a)", '(', ')'),
            Ok(vec!["".into(), "a".into()])
        );
        assert_eq!(
            split_list("(\"a\",)", '(', ')'),
            Ok(vec!["a".into(), "".into()])
        );
        assert_eq!(
            split_list(r#"("a,b",c,"q\"x")"#, '(', ')'),
            Ok(vec!["a,b".into(), "c".into(), "q\"x".into()])
        );
        assert_eq!(split_list("{x}", '{', '}'), Ok(vec!["x".into()]));
        assert!(split_list("a,b", '(', ')').is_err());
        assert!(split_list("()", '(', ')').is_err());
        assert!(split_list("(\"a", '(', ')').is_err());
        assert!(split_list("(\"a\"b)", '(', ')').is_err());
        let many = format!("({})", vec!["1"; 101].join(","));
        assert!(split_list(&many, '(', ')').is_err());
    }

    fn target(kind: FieldKind) -> Target {
        Target {
            expr: "\"f_x\"".into(),
            sql_type: "t".into(),
            field: Field::new(kind),
            nullable: true,
        }
    }

    #[test]
    fn filters_become_bound_conditions() {
        let number = target(FieldKind::Number);
        let sql = |t: &Target, raw: &str| {
            let mut params = Params::default();
            let sql = Filter::parse(t, raw).map(|f| f.sql(&mut params));
            (sql, params.len())
        };
        assert_eq!(
            sql(&number, "gt.2.5"),
            (Ok("\"f_x\" > ($1::text)::t".into()), 1)
        );
        assert_eq!(
            sql(&number, "not.in.(1,2)"),
            (Ok("NOT (\"f_x\" = ANY(($1::text[])::t[]))".into()), 1)
        );
        assert_eq!(sql(&number, "is.null"), (Ok("\"f_x\" IS NULL".into()), 0));
        assert!(sql(&number, "like.1*").0.is_err());
        assert!(sql(&number, "eq.abc").0.is_err());
        assert!(sql(&number, "zz.1").0.is_err());
        assert!(sql(&number, "eq").0.is_err());
        let text = target(FieldKind::String);
        assert_eq!(
            sql(&text, "ilike.*dog*"),
            (Ok("\"f_x\" ILIKE ($1::text)::text".into()), 1)
        );
        let flag = target(FieldKind::Boolean);
        assert_eq!(sql(&flag, "is.true"), (Ok("\"f_x\" IS TRUE".into()), 0));
        assert!(sql(&flag, "gt.true").0.is_err());
        let tags = target(FieldKind::Array(Box::new(Field::new(FieldKind::Integer))));
        assert_eq!(
            sql(&tags, "cs.{1,2}"),
            (Ok("\"f_x\" @> ($1::text)::jsonb".into()), 1)
        );
        assert!(sql(&tags, "cs.{a}").0.is_err());
        assert!(sql(&tags, "eq.1").0.is_err());
    }
}
