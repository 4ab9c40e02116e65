//! Fault injection routes, compiled only with the `test-hooks` feature (the workspace's
//! own tests enable it; release builds never have it). `POST /__test__/panic/{target}`
//! arms a panic in the named actor's next supervised input (`room:<id>`,
//! `sale:<id>`), or, for `store`, makes the store thread panic at once.

use actix_web::{HttpResponse, web};

use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/__test__/panic/{target}", web::post().to(panic));
}

async fn panic(target: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    if target.as_str() == "store" {
        let _ = state.sales.store().panic_for_test().await;
    } else {
        lockstep_actors::hooks::arm(&target);
    }
    HttpResponse::Ok().finish()
}
