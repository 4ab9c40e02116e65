//! The merchant inventory API (`/api/v1`, merchant token): products and SKUs, stock,
//! sales, orders. Catalogue reads and writes run as store transactions; anything that
//! touches a live sale's stock (confirm, cancel, close, summary) goes through the sale's
//! inventory actor, the one place its decisions are made. A merchant only ever sees and
//! changes its own data: other merchants' ids answer 404.

use actix_web::{HttpRequest, HttpResponse, web};
use lockstep_actors::clock::now_ms;
use lockstep_actors::inventory::model::{Order, SaleSummary};
use lockstep_actors::inventory::{self, Created, ReplySink, SaleHandle, reply_channel};
use lockstep_actors::store::{
    NewProduct, NewSale, OrderFilter, Product, SaleRecord, Sku, StockChange, StoreError,
};
use lockstep_protocol::{ErrorCode, Role, RoomId};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::{ApiError, ErrorBody, bearer};
use crate::state::AppState;

/// The merchant id from a merchant token.
pub(crate) fn merchant_of(req: &HttpRequest, state: &AppState) -> Result<String, ApiError> {
    let token = bearer(req)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "a merchant token is required"))?;
    let claims = state.auth.verify(token)?;
    match (claims.role, claims.merchant) {
        (Role::Merchant, Some(merchant)) => Ok(merchant),
        _ => Err(ApiError::new(
            ErrorCode::Forbidden,
            "this endpoint needs a merchant token",
        )),
    }
}

/// A sale with its live counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct SaleView {
    pub sale: SaleRecord,
    pub summary: SaleSummary,
}

/// One page of orders; pass `next` as `after` for the following page.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    pub next: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/products", tag = "products", request_body = NewProduct,
    responses((status = 201, body = Product), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 408, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("merchant" = [])))]
pub async fn create_product(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<NewProduct>,
) -> Result<HttpResponse, ApiError> {
    let merchant = merchant_of(&req, &state)?;
    let body = body.into_inner();
    body.validate()
        .map_err(|m| ApiError::new(ErrorCode::InvalidMessage, m))?;
    let product = state
        .sales
        .store()
        .create_product(merchant, body, now_ms())
        .await?;
    Ok(HttpResponse::Created().json(product))
}

#[utoipa::path(get, path = "/api/v1/products", tag = "products",
    responses((status = 200, body = Vec<Product>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("merchant" = [])))]
pub async fn list_products(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let merchant = merchant_of(&req, &state)?;
    let products = state.sales.store().list_products(merchant).await?;
    Ok(HttpResponse::Ok().json(products))
}

#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "products",
    params(("id" = String, Path, description = "product id")),
    responses((status = 200, body = Product), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("merchant" = [])))]
pub async fn get_product(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let merchant = merchant_of(&req, &state)?;
    let id = id.into_inner();
    let missing = ApiError::new(ErrorCode::ProductNotFound, format!("no product `{id}`"));
    let product = state.sales.store().get_product(merchant, id).await?;
    product.map(|p| HttpResponse::Ok().json(p)).ok_or(missing)
}

#[utoipa::path(get, path = "/api/v1/skus/{id}", tag = "stock",
    params(("id" = String, Path, description = "SKU id")),
    responses((status = 200, body = Sku), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("merchant" = [])))]
pub async fn get_sku(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let merchant = merchant_of(&req, &state)?;
    let id = id.into_inner();
    let sku = state.sales.store().get_sku(merchant, id).await?;
    Ok(HttpResponse::Ok().json(sku))
}

/// Sets (`stock`) or moves (`delta`) a SKU's free stock, with a reason.
#[utoipa::path(post, path = "/api/v1/skus/{id}/stock", tag = "stock", request_body = StockChange,
    params(("id" = String, Path, description = "SKU id")),
    responses((status = 200, body = Sku), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 408, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("merchant" = [])))]
pub async fn change_stock(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<StockChange>,
) -> Result<HttpResponse, ApiError> {
    let merchant = merchant_of(&req, &state)?;
    let (id, change) = (id.into_inner(), body.into_inner());
    let sku = state
        .sales
        .store()
        .change_stock(merchant, id, change, now_ms())
        .await?;
    Ok(HttpResponse::Ok().json(sku))
}

/// Creates a sale of one SKU in a room; its allotment leaves the SKU's free stock atomically.
#[utoipa::path(post, path = "/api/v1/sales", tag = "sales", request_body = NewSale,
    responses((status = 201, body = SaleView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 408, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("merchant" = [])))]
pub async fn create_sale(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<NewSale>,
) -> Result<HttpResponse, ApiError> {
    let merchant = merchant_of(&req, &state)?;
    let body = body.into_inner();
    body.validate()
        .map_err(|m| ApiError::new(ErrorCode::InvalidMessage, m))?;
    RoomId::parse(&body.room)?;
    // Cluster mode: the node running the room creates the sale, and runs it from then on.
    let forwarded = serde_json::to_vec(&body).expect("a sale request serializes");
    if let Some(answer) = crate::forward::to_owner_as(
        &state,
        &req,
        ("POST", "/api/v1/sales"),
        forwarded.into(),
        &body.room,
    )
    .await
    {
        return answer;
    }
    let (record, created) = state.sales.create(merchant, body).await?;
    let summary = match created {
        Created::Running(handle) => summary(&handle).await?,
        // Cluster mode: the sale runs on the node that owns its room.
        Created::Elsewhere(summary) => summary,
    };
    Ok(HttpResponse::Created().json(SaleView {
        sale: record,
        summary,
    }))
}

pub(crate) async fn summary(handle: &SaleHandle) -> Result<SaleSummary, ApiError> {
    match handle.addr.send(inventory::Summary).await {
        Ok(Some(summary)) => Ok(summary),
        Ok(None) => Err(ApiError::new(
            ErrorCode::Unavailable,
            "the sale is being rebuilt after a storage failure; retry later",
        )),
        Err(_) => Err(ApiError::new(
            ErrorCode::Unavailable,
            "the sale is not running; retry",
        )),
    }
}

/// Where a sale runs, as a merchant's command finds it.
enum Running {
    /// Here: its actor (loaded if it had retired from memory).
    Here(SaleHandle),
    /// Cluster mode: on the node that owns its room, which answered the forwarded request.
    Elsewhere(HttpResponse),
}

/// The running actor of a sale of `room`, or (cluster mode) the answer of the node running
/// the room to `req`, forwarded there.
async fn running(
    state: &AppState,
    req: &HttpRequest,
    sale_id: &str,
    room: &str,
) -> Result<Running, ApiError> {
    if let Some(answer) = crate::forward::to_owner(state, req, web::Bytes::new(), room).await {
        return Ok(Running::Elsewhere(answer?));
    }
    state
        .sales
        .get_or_load(sale_id)
        .await?
        .map(Running::Here)
        .ok_or_else(|| ApiError::new(ErrorCode::SaleNotFound, format!("no sale `{sale_id}`")))
}

/// Asks the sale, through its admission gate, and waits for the durable answer.
async fn ask<T: Send + 'static>(
    handle: &SaleHandle,
    send: impl FnOnce(ReplySink<T>),
) -> Result<T, ApiError> {
    let (sink, answer) = reply_channel();
    if let Some(sink) = handle.admit(sink) {
        send(sink);
    }
    Ok(answer.await?)
}

/// The merchant's sale and its running actor.
async fn own_sale(
    state: &AppState,
    req: &HttpRequest,
    merchant: String,
    id: String,
) -> Result<(SaleRecord, Running), ApiError> {
    let missing = ApiError::new(ErrorCode::SaleNotFound, format!("no sale `{id}`"));
    let lookup = id.clone();
    let record = state
        .sales
        .store()
        .get_sale(merchant, lookup)
        .await?
        .ok_or(missing)?;
    let running = running(state, req, &id, &record.room).await?;
    Ok((record, running))
}

#[utoipa::path(get, path = "/api/v1/sales/{id}", tag = "sales",
    params(("id" = String, Path, description = "sale id")),
    responses((status = 200, body = SaleView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("merchant" = [])))]
pub async fn get_sale(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let merchant = merchant_of(&req, &state)?;
    let id = id.into_inner();
    let sale = state
        .sales
        .store()
        .get_sale(merchant, id.clone())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::SaleNotFound, format!("no sale `{id}`")))?;
    let not_found = || ApiError::new(ErrorCode::SaleNotFound, format!("no sale `{id}`"));
    let summary = match state.sales.get_or_load(&id).await {
        Ok(Some(handle)) => summary(&handle).await?,
        Ok(None) => return Err(not_found()),
        // Cluster mode: the node that owns the room runs the sale; its counts as stored.
        Err(StoreError::NotHere(_)) => state
            .sales
            .stored_summary(&id)
            .await?
            .ok_or_else(not_found)?,
        Err(e) => return Err(e.into()),
    };
    Ok(HttpResponse::Ok().json(SaleView { sale, summary }))
}

/// Ends a sale: no more orders; unsold units return to the SKU's free stock.
#[utoipa::path(post, path = "/api/v1/sales/{id}/close", tag = "sales",
    params(("id" = String, Path, description = "sale id")),
    responses((status = 200, body = SaleView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("merchant" = [])))]
pub async fn close_sale(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let merchant = merchant_of(&req, &state)?;
    let (sale, handle) = match own_sale(&state, &req, merchant, id.into_inner()).await? {
        (sale, Running::Here(handle)) => (sale, handle),
        (_, Running::Elsewhere(answer)) => return Ok(answer),
    };
    ask(&handle, |reply| {
        handle.addr.do_send(inventory::CloseSale { reply })
    })
    .await?;
    let summary = summary(&handle).await?;
    Ok(HttpResponse::Ok().json(SaleView { sale, summary }))
}

#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(OrderFilter),
    responses((status = 200, body = OrderPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("merchant" = [])))]
pub async fn list_orders(
    req: HttpRequest,
    state: web::Data<AppState>,
    filter: web::Query<OrderFilter>,
) -> Result<HttpResponse, ApiError> {
    let merchant = merchant_of(&req, &state)?;
    let filter = filter.into_inner();
    let limit = filter.limit.unwrap_or(100).clamp(1, 500) as usize;
    let orders = state.sales.store().list_orders(merchant, filter).await?;
    let next = (orders.len() == limit)
        .then(|| orders.last().map(|o| o.id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(OrderPage { orders, next }))
}

async fn own_order(state: &AppState, merchant: String, id: String) -> Result<Order, ApiError> {
    let missing = ApiError::new(ErrorCode::OrderNotFound, format!("no order `{id}`"));
    state
        .sales
        .store()
        .get_order(merchant, id)
        .await?
        .ok_or(missing)
}

#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "order id")),
    responses((status = 200, body = Order), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("merchant" = [])))]
pub async fn get_order(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let merchant = merchant_of(&req, &state)?;
    Ok(HttpResponse::Ok().json(own_order(&state, merchant, id.into_inner()).await?))
}

/// Marks a reservation paid.
#[utoipa::path(post, path = "/api/v1/orders/{id}/confirm", tag = "orders",
    params(("id" = String, Path, description = "order id")),
    responses((status = 200, body = Order), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("merchant" = [])))]
pub async fn confirm_order(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    order_command(req, state, id.into_inner(), true).await
}

/// Cancels a reservation or a paid order; its units return to the sale (or to stock once
/// the sale has ended).
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders",
    params(("id" = String, Path, description = "order id")),
    responses((status = 200, body = Order), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("merchant" = [])))]
pub async fn cancel_order(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    order_command(req, state, id.into_inner(), false).await
}

async fn order_command(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: String,
    confirm: bool,
) -> Result<HttpResponse, ApiError> {
    let merchant = merchant_of(&req, &state)?;
    let order = own_order(&state, merchant.clone(), id).await?;
    let room = state
        .sales
        .store()
        .get_sale(merchant, order.sale_id.clone())
        .await?
        .map(|sale| sale.room)
        .unwrap_or_default();
    let handle = match running(&state, &req, &order.sale_id, &room).await? {
        Running::Here(handle) => handle,
        Running::Elsewhere(answer) => return Ok(answer),
    };
    let order = ask(&handle, |reply| {
        if confirm {
            handle.addr.do_send(inventory::Confirm {
                order_id: order.id,
                reply,
            });
        } else {
            handle.addr.do_send(inventory::Cancel {
                order_id: order.id,
                buyer: None,
                reply,
            });
        }
    })
    .await?;
    Ok(HttpResponse::Ok().json(order))
}
