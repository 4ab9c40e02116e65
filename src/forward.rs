//! Cluster mode: an HTTP request about a room that another node runs — its snapshot or
//! sales, WHIP and WHEP (the video runs on the room's owner), a merchant closing a sale
//! or confirming an order — is forwarded to that node as it came (method, path and query,
//! `Authorization`, `Content-Type`, body), and its answer returned as the owner gave it.
//! The owner checks the token itself (every node shares `auth.secret`). A forwarded
//! request carries `x-lockstep-forwarded`; a node never forwards one again (the room
//! moved meanwhile: `unavailable`, retry). A replay's recording is streamed from the
//! node that recorded it.

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::{StatusCode, header};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use lockstep_protocol::ErrorCode;

use crate::http::ApiError;
use crate::state::AppState;

/// Marks a request one node forwarded to another (its value: the forwarding node).
pub const FORWARDED: &str = "x-lockstep-forwarded";

/// How long the owner may take to answer a forwarded request.
const TIMEOUT: Duration = Duration::from_secs(15);

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds")
    })
}

/// Forwards `req` (with `body`) to the node running `room`, when that is another node;
/// `None` when this node should answer (one process, the room runs here, or nobody runs
/// it).
pub async fn to_owner(
    state: &AppState,
    req: &HttpRequest,
    body: Bytes,
    room: &str,
) -> Option<Result<HttpResponse, ApiError>> {
    let path = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |p| p.as_str());
    to_owner_as(state, req, (req.method().as_str(), path), body, room).await
}

/// [`to_owner`], asking the owner `method path` instead of what `req` asked.
pub async fn to_owner_as(
    state: &AppState,
    req: &HttpRequest,
    (method, path): (&str, &str),
    body: Bytes,
    room: &str,
) -> Option<Result<HttpResponse, ApiError>> {
    if state.cluster.is_none() || state.directory.get(room).is_some() {
        return None;
    }
    if req.headers().contains_key(FORWARDED) {
        return Some(Err(ApiError::new(
            ErrorCode::Unavailable,
            format!("room `{room}` moved to another node while this request was forwarded; retry"),
        )));
    }
    let headers = [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT]
        .into_iter()
        .filter_map(|name| {
            let value = req.headers().get(&name)?.as_bytes().to_vec();
            Some((name.as_str().to_owned(), value))
        })
        .collect();
    let answer = match call_owner(state, room, (method, path), headers, body).await? {
        Ok(answer) => answer,
        Err(e) => return Some(Err(e)),
    };
    Some(relay(answer, room).await)
}

/// Makes a request (`method path`, `headers`, `body`) on the node running `room`, when
/// that is another node; `None` when this node runs the room or nobody does.
pub async fn call_owner(
    state: &AppState,
    room: &str,
    (method, path): (&str, &str),
    headers: Vec<(String, Vec<u8>)>,
    body: Bytes,
) -> Option<Result<reqwest::Response, ApiError>> {
    let cluster = state.cluster.as_ref()?;
    if state.directory.get(room).is_some() {
        return None;
    }
    let unavailable = |message: String| ApiError::new(ErrorCode::Unavailable, message);
    let (node, url) = match cluster.owner_url(room).await {
        Ok(owner) => owner?,
        Err(e) => {
            return Some(Err(unavailable(format!(
                "the cluster cannot be reached ({e}); retry"
            ))));
        }
    };
    let Some(url) = url else {
        return Some(Err(unavailable(format!(
            "node `{node}` runs room `{room}` but its address is unknown (it may have died; another node takes the room over after the lease); retry"
        ))));
    };
    let url = format!("{}{path}", url.trim_end_matches('/'));
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or_default();
    let mut out = client()
        .request(method, url)
        .header(FORWARDED, cluster.node())
        .body(body);
    for (name, value) in headers {
        out = out.header(name, value);
    }
    Some(out.send().await.map_err(|e| {
        tracing::warn!(room, owner = %node, error = %e, "a request to the room's node failed");
        unavailable(format!(
            "the node running room `{room}` did not answer; retry"
        ))
    }))
}

/// Asks node `node` the same `GET` (a replay whose recording that node holds: it serves
/// the recording, and the replay's times come from it) and streams its answer through,
/// `Range` included, so seeking works.
pub async fn from_node(
    state: &AppState,
    req: &HttpRequest,
    node: &str,
    ask: NodeAsk<'_>,
) -> Result<HttpResponse, ApiError> {
    let unavailable = |message: String| ApiError::new(ErrorCode::Unavailable, message);
    let cluster = state
        .cluster
        .as_ref()
        .ok_or_else(|| unavailable("not a cluster".into()))?;
    let url = cluster
        .node_url(node)
        .await
        .map_err(|e| unavailable(format!("the cluster cannot be reached ({e}); retry")))?
        .ok_or_else(|| {
            unavailable(format!(
                "node `{node}` holds this replay's recording but is not answering; retry later"
            ))
        })?;
    let asked = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |p| p.as_str());
    let (http, path) = match ask {
        NodeAsk::Media => (media_client(), asked),
        NodeAsk::Json(Some(path)) => (client(), path),
        NodeAsk::Json(None) => (client(), asked),
    };
    let mut out = http
        .get(format!("{}{path}", url.trim_end_matches('/')))
        .header(FORWARDED, cluster.node());
    for name in [header::AUTHORIZATION, header::RANGE, header::IF_RANGE] {
        if let Some(value) = req.headers().get(&name) {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = out.send().await.map_err(|e| {
        tracing::warn!(node, error = %e, "asking the node that recorded a replay failed");
        unavailable(format!(
            "node `{node}` holding this recording did not answer; retry"
        ))
    })?;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(status);
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_RANGE,
        header::ACCEPT_RANGES,
        header::ETAG,
        header::LAST_MODIFIED,
    ] {
        if let Some(value) = answer.headers().get(name.as_str()) {
            response.insert_header((name, value.as_bytes()));
        }
    }
    Ok(match answer.content_length() {
        Some(len) => response.body(SizedStream::new(len, answer.bytes_stream())),
        None => response.streaming(answer.bytes_stream()),
    })
}

/// What [`from_node`] asks: a recording (streamed for as long as it plays), or JSON
/// (under the usual deadline), at `path` instead of the request's own when given.
#[derive(Debug, Clone, Copy)]
pub enum NodeAsk<'a> {
    Media,
    Json(Option<&'a str>),
}

/// For recordings: no overall deadline (a long replay streams for as long as it plays),
/// but a node that stops sending is given up.
fn media_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .read_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds")
    })
}

/// The owner's answer as this node's.
async fn relay(answer: reqwest::Response, room: &str) -> Result<HttpResponse, ApiError> {
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(status);
    for name in [header::CONTENT_TYPE, header::LOCATION, header::RETRY_AFTER] {
        if let Some(value) = answer.headers().get(name.as_str()) {
            response.insert_header((name, value.as_bytes()));
        }
    }
    let body = answer.bytes().await.map_err(|_| {
        ApiError::new(
            ErrorCode::Unavailable,
            format!("the node running room `{room}` did not answer; retry"),
        )
    })?;
    Ok(response.body(body))
}
