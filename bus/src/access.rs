//! Who is calling and what its roles allow: the ACL rules of DOCUMENTS.md in one place.
//!
//! Roles rank `public < user < staff < admin`; custom roles match by name; `owner` means the
//! caller created the document. `admin` may do everything, so a missing ACL entry means "admin
//! only": private by default.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::TenantId;
use crate::schema::{FieldKind, Fields, Role, RoleSet};

/// The authenticated caller of one request (or the anonymous caller of a `public` route).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// `None` for an anonymous caller.
    pub sub: Option<String>,
    pub tenant: TenantId,
    /// The token's `roles` claim as given.
    pub roles: Vec<String>,
}

/// What is known about the document's creator when a check runs.
#[derive(Debug, Clone, Copy)]
pub enum Ownership<'a> {
    /// The document exists and was created by this subject.
    CreatedBy(&'a str),
    /// The caller is creating the document, so it will be its owner.
    Creating,
    /// Not known yet (the api's early check); the handler decides with the stored creator.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Public,
    User,
    Staff,
    Admin,
}

impl Principal {
    pub fn anonymous(tenant: TenantId) -> Self {
        Self {
            sub: None,
            tenant,
            roles: Vec::new(),
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.sub.is_none()
    }

    fn rank(&self) -> Rank {
        if self.sub.is_none() {
            Rank::Public
        } else if self.roles.iter().any(|r| r == "admin") {
            Rank::Admin
        } else if self.roles.iter().any(|r| r == "staff") {
            Rank::Staff
        } else {
            Rank::User
        }
    }

    pub fn is_admin(&self) -> bool {
        self.rank() == Rank::Admin
    }

    /// An `admin` of the operators' tenant: may act on the installation as a whole (every
    /// tenant's views, metrics).
    pub fn is_operator(&self, operator_tenant: Option<&str>) -> bool {
        self.is_admin() && operator_tenant.is_some_and(|t| t == self.tenant.as_str())
    }

    /// Whether the caller created a document recorded as created by `creator`. Anonymous
    /// creators are recorded as "", which no token's `sub` can be.
    pub fn owns(&self, creator: &str) -> bool {
        self.sub
            .as_deref()
            .is_some_and(|sub| !creator.is_empty() && sub == creator)
    }

    fn has_role(&self, role: &Role, owner: Ownership<'_>) -> bool {
        match role {
            Role::Public => true,
            Role::User => self.rank() >= Rank::User,
            Role::Staff => self.rank() >= Rank::Staff,
            Role::Admin => self.rank() >= Rank::Admin,
            Role::Custom(name) => self.sub.is_some() && self.roles.iter().any(|r| r == name),
            Role::Owner => match owner {
                Ownership::CreatedBy(creator) => self.owns(creator),
                Ownership::Creating | Ownership::Unknown => self.sub.is_some(),
            },
        }
    }

    /// Whether the caller holds one of `roles`; `None` (no ACL entry) admits only admins.
    pub fn may(&self, roles: Option<&RoleSet>, owner: Ownership<'_>) -> bool {
        self.is_admin() || roles.is_some_and(|set| set.0.iter().any(|r| self.has_role(r, owner)))
    }

    /// Whether the caller holds one of `roles` without being the owner, i.e. for every document.
    pub fn may_any_document(&self, roles: Option<&RoleSet>) -> bool {
        self.is_admin()
            || roles.is_some_and(|set| {
                set.0
                    .iter()
                    .any(|r| *r != Role::Owner && self.has_role(r, Ownership::Unknown))
            })
    }

    /// Whether any role in `roles` could admit the caller for some document (owner included).
    pub fn may_some_document(&self, roles: Option<&RoleSet>) -> bool {
        self.may(roles, Ownership::Unknown)
    }

    /// The subject recorded as `created_by`/`updated_by` and in event metadata; empty for an
    /// anonymous caller (tokens with an empty `sub` are refused, so it never names a user).
    pub fn actor_sub(&self) -> &str {
        self.sub.as_deref().unwrap_or_default()
    }

    /// Removes, recursively, every field whose `acl.read` the caller does not satisfy, and
    /// every `password` (a hash no one is shown, admins included).
    pub fn redact(&self, fields: &Fields, doc: &mut Map<String, Value>, owner: Ownership<'_>) {
        for (name, field) in fields {
            let hidden = matches!(field.kind, FieldKind::Password)
                || field
                    .acl
                    .read
                    .as_ref()
                    .is_some_and(|read| !self.may(Some(read), owner));
            if hidden {
                doc.remove(name);
                continue;
            }
            if let Some(value) = doc.get_mut(name) {
                self.redact_value(&field.kind, value, owner);
            }
        }
    }

    /// Descends into objects and into the objects of arrays, wherever hidden fields may be.
    fn redact_value(&self, kind: &FieldKind, value: &mut Value, owner: Ownership<'_>) {
        match (kind, value) {
            (FieldKind::Object(nested), Value::Object(inner)) => self.redact(nested, inner, owner),
            (FieldKind::Array(item), Value::Array(items)) => {
                for element in items {
                    self.redact_value(&item.kind, element, owner);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: &[&str]) -> Principal {
        Principal {
            sub: Some("u1".into()),
            tenant: TenantId::parse("t").unwrap_or_else(|| unreachable!()),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn roles_rank_and_admin_sees_everything() {
        let staff = RoleSet(vec![Role::Staff]);
        assert!(principal(&["staff"]).may(Some(&staff), Ownership::Unknown));
        assert!(principal(&["admin"]).may(Some(&staff), Ownership::Unknown));
        assert!(!principal(&[]).may(Some(&staff), Ownership::Unknown));
        assert!(principal(&["admin"]).may(None, Ownership::Unknown));
        assert!(!principal(&["staff"]).may(None, Ownership::Unknown));
    }

    #[test]
    fn owner_is_the_creator() {
        let owner = RoleSet(vec![Role::Owner]);
        let p = principal(&[]);
        assert!(p.may(Some(&owner), Ownership::CreatedBy("u1")));
        assert!(!p.may(Some(&owner), Ownership::CreatedBy("u2")));
        assert!(!p.may_any_document(Some(&owner)));
    }

    #[test]
    fn public_admits_anonymous_callers_and_user_does_not() {
        let tenant = TenantId::parse("t").unwrap_or_else(|| unreachable!());
        let anon = Principal::anonymous(tenant);
        assert!(anon.may(Some(&RoleSet(vec![Role::Public])), Ownership::Unknown));
        assert!(!anon.may(Some(&RoleSet(vec![Role::User])), Ownership::Unknown));
        assert!(!anon.may(Some(&RoleSet(vec![Role::Owner])), Ownership::Unknown));
    }

    #[test]
    fn hidden_fields_are_removed_inside_arrays_of_objects() {
        let registry = crate::schema::Registry::from_sources(&[(
            "shop",
            "order",
            "fields:\n  lines:\n    type: array\n    items:\n      type: object\n      fields:\n        sku: {type: string}\n        cost: {type: number, acl: {read: staff, write: staff}}\nacl: {read: user}\n",
        )])
        .unwrap_or_else(|e| panic!("{e}"));
        let schema = registry
            .get("shop", "order")
            .unwrap_or_else(|| unreachable!());
        let mut doc =
            serde_json::json!({"lines": [{"sku": "a", "cost": 3}, {"sku": "b", "cost": 4}]})
                .as_object()
                .cloned()
                .unwrap_or_default();
        principal(&[]).redact(&schema.fields, &mut doc, Ownership::Unknown);
        assert_eq!(
            Value::Object(doc),
            serde_json::json!({"lines": [{"sku": "a"}, {"sku": "b"}]})
        );
    }
}
