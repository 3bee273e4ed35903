//! Which keys a field spec may have, given its type and where it is declared.

/// Where a field is declared: some keys only make sense at the top of a document.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    Top,
    /// Inside an `object` field.
    Nested,
    /// The `items` of an array.
    Item,
    /// A command's params: a request body that is not stored, so no key about storage or
    /// queries applies.
    Param,
}

/// Every key a field may have; which ones apply depends on its type, see [`key_problem`].
const FIELD_KEYS: [&str; 21] = [
    "type",
    "required",
    "nullable",
    "default",
    "min",
    "max",
    "min_items",
    "max_items",
    "enum",
    "pattern",
    "unique",
    "immutable",
    "read_only",
    "filter",
    "sort",
    "search",
    "acl",
    "description",
    "fields",
    "items",
    "to",
];

/// Why `key` cannot appear on a field of type `type_name` declared at `place`, if it cannot.
/// With an unknown type only unknown keys are reported.
pub(super) fn key_problem(key: &str, type_name: Option<&str>, place: Place) -> Option<String> {
    if !FIELD_KEYS.contains(&key) {
        return Some(format!("unknown key `{key}`"));
    }
    let ty = type_name?;
    let text = matches!(ty, "string" | "email" | "url");
    let numeric = matches!(ty, "integer" | "number");
    let scalar = !matches!(ty, "object" | "array");
    let applies = match key {
        // A password is kept only as a hash: nothing can compare, order, search or default it.
        _ if ty == "password" => matches!(key, "required" | "nullable" | "acl" | "description"),
        "fields" => ty == "object",
        "items" | "min_items" | "max_items" => ty == "array",
        "to" => ty == "ref",
        "min" | "max" => text || numeric,
        "enum" => matches!(ty, "string" | "integer" | "number"),
        "pattern" | "search" => text,
        "unique" | "sort" => scalar,
        // An array filter means "contains" (`cs`), which has an index of its own.
        "filter" => scalar || ty == "array",
        _ => true,
    };
    if !applies {
        return Some(format!("`{key}` does not apply to type `{ty}`"));
    }
    let array_level = matches!(
        key,
        "required"
            | "default"
            | "unique"
            | "immutable"
            | "read_only"
            | "acl"
            | "filter"
            | "sort"
            | "search"
    );
    if place == Place::Param
        && matches!(
            key,
            "unique" | "immutable" | "read_only" | "filter" | "sort" | "search" | "acl"
        )
    {
        return Some(format!("`{key}` does not apply to command params"));
    }
    if place == Place::Item && array_level {
        return Some(format!(
            "`{key}` does not apply to array items; set it on the array field"
        ));
    }
    // Uniqueness is enforced through one reserved value per document, which a nested or
    // repeated value does not have.
    if place != Place::Top && key == "unique" {
        return Some("`unique` is only allowed on top-level fields".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::tests::only;

    #[test]
    fn keys_that_do_not_apply_to_the_type_are_errors() {
        let cases = [
            (
                "{type: integer, pattern: '^1$'}",
                "`pattern` does not apply to type `integer`",
            ),
            (
                "{type: string, max_items: 3}",
                "`max_items` does not apply to type `string`",
            ),
            (
                "{type: boolean, min: 1}",
                "`min` does not apply to type `boolean`",
            ),
            (
                "{type: date, search: true}",
                "`search` does not apply to type `date`",
            ),
            (
                "{type: array, items: {type: string}, sort: true}",
                "`sort` does not apply to type `array`",
            ),
            (
                "{type: string, to: shop.customer}",
                "`to` does not apply to type `string`",
            ),
            (
                "{type: array, items: {type: string, unique: true}}",
                "`unique` does not apply to array items; set it on the array field",
            ),
            (
                "{type: object, fields: {b: {type: string, unique: true}}}",
                "`unique` is only allowed on top-level fields",
            ),
        ];
        for (spec, expected) in cases {
            let (_, _, message) = only(&format!("fields:\n  a: {spec}\n"));
            assert!(message.ends_with(expected), "{spec}: {message}");
        }
    }
}
