//! Access rules: the document's `acl` (action → roles) and a field's `acl: {read, write}`.

use saphyr::{MarkedYaml, YamlData};

use super::Parser;
use crate::schema::model::{Acl, AclAction, FieldAcl, Role, RoleSet};
use crate::schema::yaml::scalar_str;

impl Parser<'_> {
    /// The document's `acl`: each action maps to the roles allowed to perform it.
    pub(super) fn acl(&mut self, node: &MarkedYaml<'_>) -> Acl {
        let mut acl = Acl::default();
        let Some(entries) = self.entries(node, "`acl`") else {
            return acl;
        };
        for entry in entries {
            let action = entry.name;
            if action == "restore" {
                let message = "`acl`: `restore` is governed by `delete`; remove this key";
                self.error(entry.key, message);
                continue;
            }
            let Some(action) = AclAction::parse(action) else {
                let message = format!(
                    "`acl`: `{action}` is not an action (create, read, update, delete, history \
                     or a command name matching ^[a-z][a-z0-9_]*$)"
                );
                self.error(entry.key, message);
                continue;
            };
            let key = format!("`acl.{action}`");
            // Before a document exists it has no creator, so `owner` could never match.
            let allow_owner = action != AclAction::Create;
            if let Some(roles) = self.roles(entry.value, &key, allow_owner) {
                acl.actions.insert(action, roles);
            }
        }
        acl
    }

    /// A field's `acl: {read, write}`; `path` names the field in messages.
    pub(super) fn field_acl(&mut self, node: &MarkedYaml<'_>, path: &str) -> FieldAcl {
        let mut acl = FieldAcl::default();
        let Some(entries) = self.entries(node, &format!("field `{path}`: `acl`")) else {
            return acl;
        };
        for entry in entries {
            let key = format!("field `{path}`: `acl.{}`", entry.name);
            match entry.name {
                "read" => acl.read = self.roles(entry.value, &key, true),
                "write" => acl.write = self.roles(entry.value, &key, true),
                other => {
                    let message = format!(
                        "field `{path}`: `acl`: unknown key `{other}` (expected read, write)"
                    );
                    self.error(entry.key, message);
                }
            }
        }
        acl
    }

    /// A role or a list of roles.
    pub(super) fn roles(
        &mut self,
        node: &MarkedYaml<'_>,
        key: &str,
        allow_owner: bool,
    ) -> Option<RoleSet> {
        let nodes: Vec<&MarkedYaml<'_>> = match &node.data {
            YamlData::Sequence(items) => items.iter().collect(),
            _ => vec![node],
        };
        let mut roles = Vec::with_capacity(nodes.len());
        let mut valid = true;
        for role_node in nodes {
            match scalar_str(role_node).and_then(Role::parse) {
                Some(Role::Owner) if !allow_owner => {
                    let message = format!(
                        "{key}: `owner` is meaningless here: the document has no creator yet"
                    );
                    self.error(role_node, message);
                    valid = false;
                }
                Some(role) => roles.push(role),
                None => {
                    let message = format!(
                        "{key}: expected a role (public, user, staff, admin, owner or a custom \
                         role matching ^[a-z][a-z0-9_-]*$) or a list of roles"
                    );
                    self.error(role_node, message);
                    valid = false;
                }
            }
        }
        valid.then_some(RoleSet(roles))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::super::tests::only;
    use crate::schema::{Registry, Role, RoleSet};

    #[test]
    fn acl_values_are_roles_and_owner_cannot_create() {
        let (line, column, message) =
            only("fields: {a: {type: string}}\nacl:\n  create: [staff, owner]\n");
        assert_eq!((line, column), (3, 19));
        assert_eq!(
            message,
            "`acl.create`: `owner` is meaningless here: the document has no creator yet"
        );
        let (_, _, message) = only("fields: {a: {type: string}}\nacl: {read: Staff}\n");
        assert!(
            message.starts_with("`acl.read`: expected a role"),
            "{message}"
        );
        let (_, _, message) = only("fields: {a: {type: string}}\nacl: {restore: staff}\n");
        assert!(
            message.contains("`restore` is governed by `delete`"),
            "{message}"
        );
    }
    #[test]
    fn field_acl_roles_are_checked_too() {
        let (line, column, message) = only(
            "fields:
  a: {type: string, acl: {write: [staff, 'Boss']}}
",
        );
        assert_eq!((line, column), (2, 42));
        assert!(
            message.starts_with("field `a`: `acl.write`: expected a role"),
            "{message}"
        );
        let yaml = "fields: {a: {type: string, acl: {read: [owner, auditor]}}}";
        let registry = Registry::from_sources(&[("s", "d", yaml)]).unwrap();
        let read = registry.get("s", "d").unwrap().fields["a"].acl.read.clone();
        assert_eq!(
            read,
            Some(RoleSet(vec![Role::Owner, Role::Custom("auditor".into())]))
        );
    }
}
