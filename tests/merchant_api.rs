//! The merchant inventory API over real HTTP: validation, stock accounting, isolation
//! between merchants, order paging, and the OpenAPI document.

mod common;

use common::{TestServer, test_config};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_and_change_nothing() {
    let server = TestServer::start(test_config());
    let product = json!({"title":"Mug","price_cents":1200,"skus":[{"attributes":{"color":"blue"},"stock":5}]});
    let cases = [
        (
            json!({"title":"Mug","price_cents":0,"skus":[{"stock":1}]}),
            400,
            "invalid_message",
        ),
        (
            json!({"title":"Mug","price_cents":100,"skus":[{"stock":-3}]}),
            400,
            "invalid_message",
        ),
        (
            json!({"title":"","price_cents":100,"skus":[{"stock":1}]}),
            400,
            "invalid_message",
        ),
        (
            json!({"title":"Mug","price_cents":100,"skus":[]}),
            400,
            "invalid_message",
        ),
        (
            json!({"title":"Mug","price_cents":100,"skus":[{"stock":1}],"colour":"x"}),
            400,
            "invalid_message",
        ),
    ];
    for (body, status, name) in cases {
        let (got, err) = server
            .merchant_post("m1", "/api/v1/products", body.clone())
            .await;
        assert_eq!((got, err["name"].as_str()), (status, Some(name)), "{body}");
    }
    let (status, _) = server.merchant_get("m1", "/api/v1/products").await;
    assert_eq!(status, 200);
    assert_eq!(
        server.merchant_get("m1", "/api/v1/products").await.1,
        json!([]),
        "nothing was created"
    );

    let (status, created) = server
        .merchant_post("m1", "/api/v1/products", product)
        .await;
    assert_eq!(status, 201);
    let sku = created["skus"][0]["id"].as_str().unwrap();
    server.grant("r1", "m1").await;
    let sale = |allotted: i64, price: i64, sku: &str| json!({"room":"r1","sku_id":sku,"allotted":allotted,"price_cents":price});
    for (body, status, name) in [
        (
            json!({"room":"r2","sku_id":sku,"allotted":1,"price_cents":100}),
            403,
            "forbidden",
        ),
        (sale(1, 100_000_000_001, sku), 400, "invalid_message"),
        (
            json!({"room":"r1","sku_id":sku,"allotted":1,"price_cents":1,"end_at":u64::MAX}),
            400,
            "invalid_message",
        ),
        (sale(6, 100, sku), 409, "insufficient_stock"),
        (sale(0, 100, sku), 400, "invalid_message"),
        (sale(1, 0, sku), 400, "invalid_message"),
        (sale(1, 100, "sku_nope"), 404, "sku_not_found"),
        (
            json!({"room":"bad room!","sku_id":sku,"allotted":1,"price_cents":1}),
            400,
            "invalid_message",
        ),
    ] {
        let (got, err) = server
            .merchant_post("m1", "/api/v1/sales", body.clone())
            .await;
        assert_eq!((got, err["name"].as_str()), (status, Some(name)), "{body}");
    }
    for (body, status, name) in [
        (
            json!({"delta":-6,"reason":"breakage"}),
            409,
            "insufficient_stock",
        ),
        (json!({"stock":3}), 400, "invalid_message"),
        // i64 overflow in `stock + delta` (it panicked in debug builds).
        (
            json!({"delta":i64::MAX,"reason":"typo"}),
            400,
            "invalid_message",
        ),
        (
            json!({"delta":u64::from(u32::MAX),"reason":"more than a u32 holds"}),
            400,
            "invalid_message",
        ),
        (
            json!({"stock":3,"reason":"bell\u{7}"}),
            400,
            "invalid_message",
        ),
        (
            json!({"stock":3,"delta":1,"reason":"both"}),
            400,
            "invalid_message",
        ),
    ] {
        let (got, err) = server
            .merchant_post("m1", &format!("/api/v1/skus/{sku}/stock"), body.clone())
            .await;
        assert_eq!((got, err["name"].as_str()), (status, Some(name)), "{body}");
    }
    assert_eq!(
        server
            .merchant_get("m1", &format!("/api/v1/skus/{sku}"))
            .await
            .1["stock"],
        5,
        "stock untouched"
    );
    let (status, moved) = server
        .merchant_post(
            "m1",
            &format!("/api/v1/skus/{sku}/stock"),
            json!({"delta":-2,"reason":"breakage"}),
        )
        .await;
    assert_eq!((status, moved["stock"].as_u64()), (200, Some(3)));
    let (status, set) = server
        .merchant_post(
            "m1",
            &format!("/api/v1/skus/{sku}/stock"),
            json!({"stock":9,"reason":"recount"}),
        )
        .await;
    assert_eq!((status, set["stock"].as_u64()), (200, Some(9)));

    // Units a sale holds come back to the free stock when it ends: the free stock may
    // not be set so high that their return would overflow it.
    let sale_id = server.create_sale("m1", "r1", 5, 5, json!({})).await;
    let sale_sku = server
        .merchant_get("m1", &format!("/api/v1/sales/{sale_id}"))
        .await
        .1["sale"]["sku_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, err) = server
        .merchant_post(
            "m1",
            &format!("/api/v1/skus/{sale_sku}/stock"),
            json!({"stock":u32::MAX - 2,"reason":"restock"}),
        )
        .await;
    assert_eq!(
        (status, err["name"].as_str()),
        (400, Some("invalid_message"))
    );
    let (status, set) = server
        .merchant_post(
            "m1",
            &format!("/api/v1/skus/{sale_sku}/stock"),
            json!({"stock":u32::MAX - 5,"reason":"restock"}),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    let (status, _) = server
        .merchant_post("m1", &format!("/api/v1/sales/{sale_id}/close"), json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, sku) = server
        .merchant_get("m1", &format!("/api/v1/skus/{sale_sku}"))
        .await;
    assert_eq!(
        (status, sku["stock"].as_u64()),
        (200, Some(u64::from(u32::MAX)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merchants_only_see_their_own_data() {
    let server = TestServer::start(test_config());
    let sale = server.create_sale("m1", "r1", 5, 5, json!({})).await;
    let (_, products) = server.merchant_get("m1", "/api/v1/products").await;
    let product = products[0]["id"].as_str().unwrap().to_owned();
    let sku = products[0]["skus"][0]["id"].as_str().unwrap().to_owned();
    for path in [
        format!("/api/v1/products/{product}"),
        format!("/api/v1/skus/{sku}"),
        format!("/api/v1/sales/{sale}"),
    ] {
        assert_eq!(server.merchant_get("m1", &path).await.0, 200, "{path}");
        assert_eq!(
            server.merchant_get("m2", &path).await.0,
            404,
            "{path} leaked to another merchant"
        );
    }
    assert_eq!(
        server.merchant_get("m2", "/api/v1/products").await.1,
        json!([])
    );
    let (status, _) = server
        .merchant_post(
            "m2",
            &format!("/api/v1/skus/{sku}/stock"),
            json!({"stock":0,"reason":"x"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .merchant_post("m2", &format!("/api/v1/sales/{sale}/close"), json!({}))
        .await;
    assert_eq!(status, 404);
    // A viewer token is not a merchant token; no token is unauthorized.
    let resp = reqwest::Client::new()
        .get(server.url("/api/v1/products"))
        .bearer_auth(server.viewer_token("v"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        reqwest::get(server.url("/api/v1/products"))
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_listed_filtered_paged_confirmed_and_cancelled() {
    let server = TestServer::start(test_config());
    let sale = server
        .create_sale("m1", "r1", 20, 20, json!({"per_buyer_limit": 5}))
        .await;
    let mut anchor = server.open_room("r1").await;
    let reveal_at = TestServer::drop_link(&mut anchor, &sale, 0).await;
    let now = lockstep_actors::clock::now_ms();
    tokio::time::sleep(std::time::Duration::from_millis(
        reveal_at.saturating_sub(now),
    ))
    .await;
    let (mut v, _) = server.join_viewer("r1", Some("buyer")).await;
    for i in 0..5 {
        v.send(json!({"type":"order","sale_id":sale,"key":format!("k{i}")}))
            .await;
        v.recv_until(|m| {
            matches!(m, lockstep_protocol::ServerMsg::OrderResult { .. }).then_some(())
        })
        .await;
    }
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let path = format!("/api/v1/orders?sale_id={sale}&limit=2{after}");
        let (status, page) = server.merchant_get("m1", &path).await;
        assert_eq!(status, 200);
        seen.extend(
            page["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "paging visits every order once: {seen:?}");
    let first = &seen[0];
    let (status, order) = server
        .merchant_post("m1", &format!("/api/v1/orders/{first}/confirm"), json!({}))
        .await;
    assert_eq!((status, order["state"].as_str()), (200, Some("confirmed")));
    let (status, err) = server
        .merchant_post("m1", &format!("/api/v1/orders/{first}/confirm"), json!({}))
        .await;
    assert_eq!(
        (status, err["name"].as_str()),
        (409, Some("invalid_order_state"))
    );
    let (_, confirmed) = server
        .merchant_get("m1", "/api/v1/orders?state=confirmed&buyer=buyer")
        .await;
    assert_eq!(confirmed["orders"].as_array().unwrap().len(), 1);
    let (status, cancelled) = server
        .merchant_post(
            "m1",
            &format!("/api/v1/orders/{}/cancel", seen[1]),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, cancelled["state"].as_str()),
        (200, Some("cancelled"))
    );
    let (_, view) = server
        .merchant_get("m1", &format!("/api/v1/sales/{sale}"))
        .await;
    assert_eq!(
        (
            view["summary"]["sold"].as_u64(),
            view["summary"]["reserved"].as_u64(),
            view["summary"]["remaining"].as_u64()
        ),
        (Some(1), Some(3), Some(16))
    );
    let (status, err) = server.merchant_get("m1", "/api/v1/orders?limit=abc").await;
    assert_eq!(
        (status, err["name"].as_str()),
        (400, Some("invalid_message"))
    );
    assert_eq!(
        server.merchant_get("m1", "/api/v1/orders/nope").await.0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_served_and_matches_the_checked_in_copy() {
    let server = TestServer::start(test_config());
    let served: Value = reqwest::get(server.url("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(served["openapi"].as_str().unwrap().starts_with("3."));
    for (path, method) in [
        ("/api/v1/products", "post"),
        ("/api/v1/products", "get"),
        ("/api/v1/products/{id}", "get"),
        ("/api/v1/skus/{id}", "get"),
        ("/api/v1/skus/{id}/stock", "post"),
        ("/api/v1/sales", "post"),
        ("/api/v1/sales/{id}", "get"),
        ("/api/v1/sales/{id}/close", "post"),
        ("/api/v1/orders", "get"),
        ("/api/v1/orders/{id}", "get"),
        ("/api/v1/orders/{id}/confirm", "post"),
        ("/api/v1/orders/{id}/cancel", "post"),
        ("/api/v1/rooms", "post"),
        ("/api/v1/rooms/{id}", "get"),
        ("/api/v1/rooms/{id}/sales", "get"),
        ("/api/v1/rooms/{id}/merchants", "get"),
        ("/api/v1/rooms/{id}/merchants/{merchant}", "put"),
        ("/api/v1/rooms/{id}/merchants/{merchant}", "delete"),
        ("/api/v1/rooms/{id}/analytics", "get"),
        ("/api/v1/replays", "get"),
        ("/api/v1/replays/{id}", "get"),
        ("/api/v1/replays/{id}/events", "get"),
        ("/api/v1/replays/{id}/media", "get"),
        ("/api/v1/replays/{id}/chapters/{sale_id}", "patch"),
        ("/api/v1/sales/{id}/orders", "post"),
    ] {
        assert!(
            served["paths"][path][method].is_object(),
            "{method} {path} missing from the document"
        );
    }
    for schema in [
        "Product",
        "NewProduct",
        "NewSale",
        "SaleView",
        "Order",
        "OrderPage",
        "ErrorBody",
        "StockChange",
    ] {
        assert!(
            served["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
    // The checked-in copy is what clients are generated from: a change to the API must
    // update it (`UPDATE_OPENAPI=1 cargo test --test merchant_api`).
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let document = lockstep::openapi::document();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &document).unwrap();
    }
    let checked_in: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(served, checked_in, "docs/openapi.json is stale");
}
