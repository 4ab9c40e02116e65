//! Liveness and readiness. `/healthz` says the process answers. `/readyz` says whether
//! it should get traffic: not while sales are being restored at startup, not while any
//! sale's store writes are failing (those sales refuse orders until rebuilt), not if
//! the store thread stopped, and not once shutdown began.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::state::AppState;

/// Startup and shutdown phases, for `/readyz`.
#[derive(Debug, Default)]
pub struct Phase {
    restoring: AtomicBool,
    restore_failed: std::sync::Mutex<Option<String>>,
    shutting_down: AtomicBool,
}

impl Phase {
    pub fn restoring(&self, on: bool) {
        self.restoring.store(on, Ordering::Release);
    }

    pub fn restore_failed(&self, why: String) {
        *self
            .restore_failed
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    pub fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    fn reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.shutting_down.load(Ordering::Acquire) {
            reasons.push("shutting down".to_owned());
        }
        if let Some(why) = &*self
            .restore_failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
        {
            reasons.push(format!("restoring sales failed: {why}"));
        } else if self.restoring.load(Ordering::Acquire) {
            reasons.push("restoring sales from the database".to_owned());
        }
        reasons
    }
}

/// `/readyz` body.
#[derive(Debug, Serialize)]
struct Readiness {
    ready: bool,
    reasons: Vec<String>,
    /// Trouble that does not keep the node from serving rooms (a recording stopped on
    /// a full disk): ready stays true, so live rooms keep their traffic.
    warnings: Vec<String>,
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let mut reasons = state.phase.reasons();
    let store = state.sales.store();
    if !store.is_running() {
        reasons.push("the store thread stopped".to_owned());
    }
    for sale in store.failing_sales() {
        reasons.push(format!(
            "sale {sale}: storage writes failed; it refuses orders until it is rebuilt"
        ));
    }
    let warnings = state
        .media
        .recording()
        .warnings()
        .into_iter()
        .map(|(_, why)| why)
        .collect();
    let body = Readiness {
        ready: reasons.is_empty(),
        reasons,
        warnings,
    };
    if body.ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_restore_and_shutdown_are_reasons_not_to_be_ready() {
        let phase = Phase::default();
        assert!(phase.reasons().is_empty());
        phase.restoring(true);
        assert_eq!(phase.reasons(), ["restoring sales from the database"]);
        phase.restoring(false);
        assert!(phase.reasons().is_empty());
        phase.shutting_down();
        assert_eq!(phase.reasons(), ["shutting down"]);
        phase.restore_failed("bad row".into());
        assert_eq!(
            phase.reasons(),
            ["shutting down", "restoring sales failed: bad row"]
        );
    }
}
