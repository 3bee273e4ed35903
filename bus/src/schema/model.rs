//! The in-memory form of a document declaration (`apps/<app>/<doc>.yaml`): its fields, their
//! kinds and constraints, and who may do what. Built once at start-up by [`super::Registry`].

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde_json::Value;

use crate::document::VERBS;
use crate::ids::{Collection, EventType, is_name};
use crate::rust_command::Code;
use crate::schema::condition::Condition;

/// Fields the server sets on every document; a YAML declaration may not reuse these names and a
/// request body may not write them.
pub const MANAGED_FIELDS: [&str; 6] = [
    "id",
    "version",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
];

/// The text search configurations Postgres ships with, accepted by `search_language`.
pub const SEARCH_LANGUAGES: [&str; 29] = [
    "simple",
    "arabic",
    "armenian",
    "basque",
    "catalan",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hindi",
    "hungarian",
    "indonesian",
    "irish",
    "italian",
    "lithuanian",
    "nepali",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "serbian",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
    "yiddish",
];

/// One declared document collection, e.g. `petstore.product`.
#[derive(Debug, Clone)]
pub struct DocumentSchema {
    pub app: String,
    pub name: String,
    pub description: Option<String>,
    pub fields: Fields,
    pub acl: Acl,
    /// When set, writes without `If-Match` are refused with `428`.
    pub require_if_match: bool,
    /// The Postgres text search configuration of `search` fields and of `q=` (YAML key
    /// `search_language`, default `simple`).
    pub search_language: String,
    /// Business actions beyond create, update, archive and restore, by name.
    pub commands: IndexMap<String, CommandDecl>,
}

/// A business action (YAML `commands.<name>`): its params, the guard the document must pass,
/// and the event it appends with the fields that event sets. Who may run it is the document's
/// ACL action of the same name.
#[derive(Debug, Clone)]
pub struct CommandDecl {
    pub name: String,
    pub description: Option<String>,
    /// The request body's fields, in the language of document fields.
    pub params: Fields,
    /// What it acts on: one document (`/v1/{app}/{doc}/{id}/{command}`), or the collection
    /// (`/v1/{app}/{doc}/{command}`), where it creates a document.
    pub on: On,
    /// The verbs of the events it may append (`published` gives `<app>.<doc>.published`): one
    /// for a declared command, one or more for a `kind: rust` command, whose code names each.
    pub emits: Vec<String>,
    /// Conditions on the document's fields that must all hold, or the command is refused.
    pub when: Vec<Condition>,
    /// The refusal when a condition of `when` does not hold.
    pub reject: Reject,
    /// The top-level fields the event sets, in declaration order.
    pub set: IndexMap<String, SetValue>,
    /// `kind: rust`: the decision is the app's code (`when`, `reject` and `set` are its part).
    pub rust: bool,
    /// The registered code of a `kind: rust` command, attached at start-up
    /// ([`crate::schema::Registry::attach`]).
    pub code: Option<Code>,
}

/// What a command acts on (YAML `on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum On {
    /// An existing document, named by the path's id.
    #[default]
    Document,
    /// The collection: the command has no id and its first event creates a document.
    Collection,
}

/// A refusal with a code of the app's own (`not_draft`), answered as `409`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub code: String,
    pub detail: String,
}

/// Where a value an event sets comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SetValue {
    /// The param of that name; a param the request leaves out leaves the field as it is.
    Param(String),
    Literal(Value),
}

impl DocumentSchema {
    /// The collection's dotted name, `<app>.<doc>`, used in event types and `ref` targets.
    #[must_use]
    pub fn collection(&self) -> Collection {
        Collection::new(&self.app, &self.name)
    }

    /// The command `name` that acts `on` a document or the collection.
    #[must_use]
    pub fn command(&self, name: &str, on: On) -> Option<&CommandDecl> {
        self.commands.get(name).filter(|declared| declared.on == on)
    }

    /// The types of the events this document's streams hold.
    #[must_use]
    pub fn event_types(&self) -> Vec<EventType> {
        let collection = self.collection();
        let mut verbs: Vec<&str> = VERBS.to_vec();
        for verb in self.commands.values().flat_map(|c| &c.emits) {
            if !verbs.contains(&verb.as_str()) {
                verbs.push(verb);
            }
        }
        verbs
            .iter()
            .map(|verb| collection.event_type(verb))
            .collect()
    }
}

/// Fields in declaration order, which is also the order of required-field errors and of the
/// generated OpenAPI schema.
pub type Fields = IndexMap<String, Field>;

/// One declared field (or the `items` of an array, which is a field without a name).
#[derive(Debug, Clone)]
pub struct Field {
    pub kind: FieldKind,
    pub required: bool,
    pub nullable: bool,
    pub default: Option<Value>,
    /// The value for `integer`/`number`, the character count for text kinds.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub min_items: Option<usize>,
    pub max_items: Option<usize>,
    /// YAML key `enum`.
    pub enum_values: Option<Vec<Value>>,
    /// Used as written, so it should be anchored (`^…$`) to constrain the whole value.
    pub pattern: Option<regex::Regex>,
    pub unique: bool,
    pub immutable: bool,
    pub read_only: bool,
    pub filter: bool,
    pub sort: bool,
    pub search: bool,
    pub acl: FieldAcl,
    pub description: Option<String>,
}

impl Field {
    /// A field of `kind` with no constraints or flags.
    #[must_use]
    pub fn new(kind: FieldKind) -> Field {
        Field {
            kind,
            required: false,
            nullable: false,
            default: None,
            min: None,
            max: None,
            min_items: None,
            max_items: None,
            enum_values: None,
            pattern: None,
            unique: false,
            immutable: false,
            read_only: false,
            filter: false,
            sort: false,
            search: false,
            acl: FieldAcl::default(),
            description: None,
        }
    }

    /// Whether the value is a single JSON scalar (not an object or array), i.e. fits one
    /// indexed column.
    #[must_use]
    pub fn is_scalar(&self) -> bool {
        !matches!(self.kind, FieldKind::Object(_) | FieldKind::Array(_))
    }
}

/// How many characters a `password` may have (NIST SP 800-63B: at least 8, and long
/// passphrases allowed).
pub const PASSWORD_LENGTH: std::ops::RangeInclusive<usize> = 8..=1024;

/// What a field holds. Every kind but `object`, `array`, `integer`, `number` and `boolean` is a
/// JSON string with a format.
#[derive(Debug, Clone)]
pub enum FieldKind {
    String,
    Integer,
    Number,
    Boolean,
    Datetime,
    Date,
    Uuid,
    Email,
    Url,
    /// A secret the caller sends in clear and Herald keeps only as an argon2id hash: the api
    /// hashes it before the command leaves, and it is never shown to anyone.
    Password,
    Object(Fields),
    Array(Box<Field>),
    /// The id of a document in another (or the same) collection.
    Ref {
        app: String,
        doc: String,
    },
}

impl FieldKind {
    /// The kind names accepted by `type:` in YAML, for error messages.
    pub const NAMES: [&'static str; 13] = [
        "string", "integer", "number", "boolean", "datetime", "date", "uuid", "email", "url",
        "password", "object", "array", "ref",
    ];

    /// The name used for this kind in YAML (`type: …`).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            FieldKind::String => "string",
            FieldKind::Integer => "integer",
            FieldKind::Number => "number",
            FieldKind::Boolean => "boolean",
            FieldKind::Datetime => "datetime",
            FieldKind::Date => "date",
            FieldKind::Uuid => "uuid",
            FieldKind::Email => "email",
            FieldKind::Url => "url",
            FieldKind::Password => "password",
            FieldKind::Object(_) => "object",
            FieldKind::Array(_) => "array",
            FieldKind::Ref { .. } => "ref",
        }
    }

    /// Free text whose length, pattern and words are meaningful; the other string kinds have a
    /// fixed format instead.
    #[must_use]
    pub fn is_text(&self) -> bool {
        matches!(self, FieldKind::String | FieldKind::Email | FieldKind::Url)
    }

    /// `integer` or `number`: `min`/`max` bound the value rather than a length.
    #[must_use]
    pub fn is_numeric(&self) -> bool {
        matches!(self, FieldKind::Integer | FieldKind::Number)
    }
}

/// Per-field access: `None` means the document-level rights apply unchanged.
#[derive(Debug, Clone, Default)]
pub struct FieldAcl {
    pub read: Option<RoleSet>,
    pub write: Option<RoleSet>,
}

/// Who a right is granted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Anyone, even without a token.
    Public,
    /// Any valid token.
    User,
    Staff,
    Admin,
    /// The caller is the document's `created_by`.
    Owner,
    /// A role carried in the token's `roles` claim.
    Custom(String),
}

impl Role {
    /// Parses a role as written in YAML; custom roles are `[a-z][a-z0-9_-]*`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Role> {
        let role = match s {
            "public" => Role::Public,
            "user" => Role::User,
            "staff" => Role::Staff,
            "admin" => Role::Admin,
            "owner" => Role::Owner,
            _ => {
                let mut chars = s.chars();
                let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                    && chars.all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
                    });
                if !valid {
                    return None;
                }
                Role::Custom(s.to_owned())
            }
        };
        Some(role)
    }

    /// The role as written in YAML and in tokens.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Role::Public => "public",
            Role::User => "user",
            Role::Staff => "staff",
            Role::Admin => "admin",
            Role::Owner => "owner",
            Role::Custom(name) => name,
        }
    }
}

/// Any of these roles is enough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSet(pub Vec<Role>);

/// What a document's `acl` guards: a built-in action, or a custom command by its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AclAction {
    Create,
    Read,
    Update,
    /// Archiving and restoring.
    Delete,
    /// Reading a document's events and earlier versions.
    History,
    Command(String),
}

impl AclAction {
    /// The action a YAML key names; `None` when the key is not a name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "create" => Self::Create,
            "read" => Self::Read,
            "update" => Self::Update,
            "delete" => Self::Delete,
            "history" => Self::History,
            _ if is_name(name) => Self::Command(name.to_owned()),
            _ => return None,
        })
    }

    /// The action as written in YAML and in messages.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Create => "create",
            Self::Read => "read",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::History => "history",
            Self::Command(name) => name,
        }
    }
}

impl std::fmt::Display for AclAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Document-level rights, keyed by action.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    pub actions: BTreeMap<AclAction, RoleSet>,
}

impl Acl {
    /// The roles allowed to perform `action`; `None` means nobody but `admin`, because an
    /// undeclared action is private by default.
    #[must_use]
    pub fn roles(&self, action: &AclAction) -> Option<&RoleSet> {
        self.actions.get(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_shared_shape() {
        assert!(is_name("product"));
        assert!(is_name("a1_b"));
        assert!(!is_name(""));
        assert!(!is_name("1a"));
        assert!(!is_name("Product"));
        assert!(!is_name("a-b"));
    }

    #[test]
    fn roles_parse_builtin_and_custom_names() {
        assert_eq!(Role::parse("staff"), Some(Role::Staff));
        assert_eq!(Role::parse("owner"), Some(Role::Owner));
        assert_eq!(
            Role::parse("warehouse-lead"),
            Some(Role::Custom("warehouse-lead".into()))
        );
        assert_eq!(Role::parse("Staff"), None);
        assert_eq!(Role::parse(""), None);
        assert_eq!(Role::Custom("x".into()).as_str(), "x");
    }

    #[test]
    fn scalar_kinds_exclude_objects_and_arrays() {
        assert!(Field::new(FieldKind::Uuid).is_scalar());
        assert!(!Field::new(FieldKind::Object(Fields::new())).is_scalar());
        assert!(!Field::new(FieldKind::Array(Box::new(Field::new(FieldKind::String)))).is_scalar());
    }
}
