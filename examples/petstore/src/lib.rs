//! The petstore example's Rust code: the `restock` command of `apps/petstore/product.yaml`,
//! declared `kind: rust`. [`app`] registers it; `src/main.rs` runs it as the example's binary,
//! which answers every `herald` subcommand.

use herald_bus::access::Principal;
use herald_bus::document::DocumentState;
use herald_bus::rust_command::{Emit, Refusal, RustCommand};
use serde::Deserialize;
use serde_json::{Value, json};

/// The example's code, ready to run or to test with.
pub fn app() -> herald_cli::App {
    herald_cli::App::new().command("petstore.product.restock", Restock)
}

/// `POST /v1/petstore/product/{id}/restock {"quantity": q}`: the stock grows by `q`, unless the
/// product is retired (or the stock would overflow).
pub struct Restock;

/// The body, already checked against the YAML's `params` (an integer from 1 to 10,000).
#[derive(Deserialize)]
pub struct Quantity {
    pub quantity: i64,
}

impl RustCommand for Restock {
    type Params = Quantity;

    fn decide(
        &self,
        product: &DocumentState,
        params: Quantity,
        _caller: &Principal,
    ) -> Result<Vec<Emit>, Refusal> {
        if product.fields.get("status").and_then(Value::as_str) == Some("retired") {
            return Err(Refusal::new(
                "product_retired",
                "A retired product is not restocked",
            ));
        }
        let stock = product
            .fields
            .get("stock")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let Some(restocked) = stock.checked_add(params.quantity) else {
            return Err(Refusal::new(
                "stock_overflow",
                "The stock would pass the largest integer a field keeps",
            ));
        };
        Ok(vec![
            Emit::new("restocked", json!({"quantity": params.quantity})).set("stock", restocked),
        ])
    }
}
