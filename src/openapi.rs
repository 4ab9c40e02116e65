//! The OpenAPI document of the merchant API, generated from the handlers' annotations
//! and served at `/api/v1/openapi.json`.

use actix_web::HttpResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::merchant;

#[derive(OpenApi)]
#[openapi(
    info(title = "Lockstep merchant API", description = "Products, stock, flash sales and orders."),
    paths(
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
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "merchant",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
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
