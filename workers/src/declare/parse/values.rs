//! Typed values of task specs read from marked YAML nodes, each mistake reported at the node
//! (the readers shared with the document parser are in [`herald_bus::schema::yaml`]).

use saphyr::{MarkedYaml, Scalar, YamlData};

use super::Parser;

impl Parser<'_> {
    /// A whole number within `min..=max`.
    pub(super) fn number(
        &mut self,
        node: &MarkedYaml<'_>,
        key: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let number = match &node.data {
            YamlData::Value(Scalar::Integer(n)) => u64::try_from(*n).ok(),
            _ => None,
        };
        let number = number.filter(|n| (min..=max).contains(n));
        if number.is_none() {
            self.error(
                node,
                format!("{key} must be a whole number from {min} to {max}"),
            );
        }
        number
    }
}
