//! Where the shared store keeps things. The catalogue — products, SKUs and their stock,
//! sale records, grants — shares one hash tag (`{catalog}`): its multi-key steps (a sale
//! taking its allotment from a SKU) are single scripts, and in a Redis Cluster it lives
//! on one shard. Each sale's hot state — phase, orders, its order stream, its fence —
//! has a tag of its own (`{sale:<id>}`), so sales spread over the shards.

pub fn product(id: &str) -> String {
    format!("lockstep:{{catalog}}:product:{id}")
}

pub fn sku(id: &str) -> String {
    format!("lockstep:{{catalog}}:sku:{id}")
}

pub fn moves(sku: &str) -> String {
    format!("lockstep:{{catalog}}:moves:{sku}")
}

pub fn merchant_products(merchant: &str) -> String {
    format!("lockstep:{{catalog}}:merchant:{merchant}:products")
}

pub fn merchant_sales(merchant: &str) -> String {
    format!("lockstep:{{catalog}}:merchant:{merchant}:sales")
}

pub fn sale(id: &str) -> String {
    format!("lockstep:{{catalog}}:sale:{id}")
}

/// Every sale id (to find the live ones at startup).
pub fn all_sales() -> String {
    "lockstep:{catalog}:sales".to_owned()
}

pub fn grants(room: &str) -> String {
    format!("lockstep:{{catalog}}:grants:{room}")
}

/// Units of a sale already given back to its SKU's free stock.
pub fn returned(sale: &str) -> String {
    format!("lockstep:{{catalog}}:returned:{sale}")
}

/// A sale's phase, released units, units it gave back, and its fence (highest epoch).
pub fn sale_state(sale: &str) -> String {
    format!("lockstep:{{sale:{sale}}}:state")
}

/// A sale's orders by id.
pub fn sale_orders(sale: &str) -> String {
    format!("lockstep:{{sale:{sale}}}:orders")
}

/// Every order write of a sale, in commit order, for downstream consumers (payment,
/// fulfilment) reading with consumer groups.
pub fn order_stream(sale: &str) -> String {
    format!("lockstep:{{sale:{sale}}}:order-stream")
}
