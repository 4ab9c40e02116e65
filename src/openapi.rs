//! The OpenAPI document of the HTTP API (rooms and the merchant inventory API),
//! generated from the handlers' annotations and served at `/api/v1/openapi.json`. Every
//! status a handler can answer is listed, and the validation rules are schema
//! constraints, so a schema-driven tester (Schemathesis, in the test suite) checks the
//! server against this document.

use actix_web::HttpResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::{analytics, merchant, replay_orders, replays, rooms};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lockstep HTTP API",
        description = "Rooms (anchors), and products, stock, flash sales and orders (merchants). Tokens are HS256 JWTs: see docs/protocol.md."
    ),
    paths(
        rooms::open_room,
        rooms::get_room,
        rooms::room_sales,
        rooms::list_merchants,
        rooms::grant_merchant,
        rooms::revoke_merchant,
        merchant::create_product,
        merchant::list_products,
        merchant::get_product,
        merchant::get_sku,
        merchant::change_stock,
        merchant::create_sale,
        merchant::get_sale,
        merchant::close_sale,
        merchant::list_orders,
        merchant::get_order,
        merchant::confirm_order,
        merchant::cancel_order,
        replays::list,
        replays::get,
        replays::events,
        replays::media,
        replays::edit_chapter,
        replays::open_replay_sale,
        replay_orders::order,
        analytics::room_analytics,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for role in ["merchant", "anchor", "viewer"] {
            components.add_security_scheme(
                role,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(format!("a {role} token")))
                        .build(),
                ),
            );
        }
    }
}

/// The document as pretty JSON (stable across runs, so it can be compared to a file).
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
