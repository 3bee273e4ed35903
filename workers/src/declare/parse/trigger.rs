//! A task's trigger: `on` names an event type of a declared document, `when` tests fields of
//! that document with values of their own type.

use std::sync::Arc;

use herald_bus::schema::model::DocumentSchema;
use saphyr::MarkedYaml;

use super::{Parser, Spec};
use crate::declare::Trigger;

impl<'a> Parser<'a> {
    /// `on` and its `when` conditions.
    pub(super) fn trigger(&mut self, spec: &Spec<'_, '_>, what: &str) -> Option<Trigger> {
        let Some(on) = spec.on else {
            if let Some(when) = &spec.when {
                let message = format!(
                    "{what}: `when` needs `on`: its conditions test the data of the event `on` names"
                );
                self.error(when.key, message);
            }
            return None;
        };
        let event_type = self.string(on, &format!("{what}: `on`"))?;
        let (collection, verb) = match event_type.rsplit_once('.') {
            Some((collection, verb)) if collection.contains('.') => (collection, verb),
            _ => {
                let message = format!(
                    "{what}: `on` must be an event type <app>.<doc>.<verb>, e.g. \
                     petstore.product.updated"
                );
                self.error(on, message);
                return None;
            }
        };
        let schema = self.document(on, &format!("{what}: `on`"), collection);
        // The verbs of a document that did not parse are unknown: its own mistakes come first.
        if let Some(Some(schema)) = schema {
            let verbs: Vec<String> = schema
                .event_types()
                .into_iter()
                .map(|event_type| event_type.verb)
                .collect();
            if !verbs.iter().any(|known| known == verb) {
                let message = format!(
                    "{what}: `on`: unknown verb `{verb}` (expected {})",
                    verbs.join(", ")
                );
                self.error(on, message);
                return None;
            }
            // `when` tests the event's data as the document's fields; a Rust command's data is
            // its code's own, so a condition on it could never be checked here.
            let coded = schema
                .commands
                .values()
                .any(|c| c.rust && c.emits.iter().any(|v| v == verb));
            if let (true, Some(when)) = (coded, &spec.when) {
                let message = format!(
                    "{what}: `when` cannot test `{verb}`: a `kind: rust` command's event carries \
                     its code's own data"
                );
                self.error(when.key, message);
                return None;
            }
        }
        // Conditions are only checked against a document that parsed; otherwise its own
        // mistakes are what needs fixing first.
        let when = match (&spec.when, schema?) {
            (Some(when), Some(schema)) => self.when(when.value, schema, what),
            _ => Vec::new(),
        };
        Some(Trigger { event_type, when })
    }

    /// A declared `<app>.<doc>`: `None` when it is not declared (reported), `Some(None)` when
    /// it is declared but did not parse.
    pub(super) fn document(
        &mut self,
        node: &MarkedYaml<'_>,
        key: &str,
        collection: &str,
    ) -> Option<Option<&'a DocumentSchema>> {
        let declared = collection
            .split_once('.')
            .filter(|(app, doc)| self.documents.is_declared(app, doc));
        let Some((app, doc)) = declared else {
            let message = format!("{key}: `{collection}` is not a declared document");
            self.error(node, message);
            return None;
        };
        let documents = self.documents;
        Some(documents.parsed(app, doc).map(Arc::as_ref))
    }
}
