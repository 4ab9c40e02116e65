//! Janus's HTTP API, as far as watching a Streaming-plugin mountpoint needs it: create a
//! session, attach the plugin, `watch` (Janus answers with its SDP offer on the event
//! long-poll), `start` with our answer, and keep the session alive.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// One viewer's Janus session and handle.
pub struct JanusWatch {
    client: reqwest::Client,
    session_url: String,
    handle_url: String,
    keepalive: tokio::task::JoinHandle<()>,
}

fn transaction() -> String {
    format!("t{:016x}", rand::random::<u64>())
}

async fn post(client: &reqwest::Client, url: &str, mut body: Value) -> anyhow::Result<Value> {
    body["transaction"] = json!(transaction());
    let reply: Value = client.post(url).json(&body).send().await?.json().await?;
    if reply["janus"] == "error" {
        bail!("Janus refused {}: {}", body["janus"], reply["error"]);
    }
    Ok(reply)
}

impl JanusWatch {
    /// Asks to watch `mountpoint` on the Janus at `base` (e.g.
    /// `http://127.0.0.2:8088/janus`); returns the watch and Janus's SDP offer.
    pub async fn request(base: &str, mountpoint: u64) -> anyhow::Result<(Self, String)> {
        let client = reqwest::Client::new();
        let session = post(&client, base, json!({"janus":"create"})).await?;
        let session_id = session["data"]["id"].as_u64().context("no session id")?;
        let session_url = format!("{base}/{session_id}");
        let handle = post(
            &client,
            &session_url,
            json!({"janus":"attach","plugin":"janus.plugin.streaming"}),
        )
        .await?;
        let handle_id = handle["data"]["id"].as_u64().context("no handle id")?;
        let handle_url = format!("{session_url}/{handle_id}");
        let reply = post(
            &client,
            &handle_url,
            json!({"janus":"message","body":{"request":"watch","id":mountpoint}}),
        )
        .await?;
        let offer = match reply["jsep"]["sdp"].as_str() {
            Some(sdp) => sdp.to_owned(),
            None => Self::next_offer(&client, &session_url).await?,
        };
        let (ka_client, ka_url) = (client.clone(), session_url.clone());
        let keepalive = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                let _ = post(&ka_client, &ka_url, json!({"janus":"keepalive"})).await;
            }
        });
        Ok((
            Self {
                client,
                session_url,
                handle_url,
                keepalive,
            },
            offer,
        ))
    }

    /// Long-polls the session's events until one carries an SDP offer.
    async fn next_offer(client: &reqwest::Client, session_url: &str) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while tokio::time::Instant::now() < deadline {
            let events: Value = client
                .get(format!("{session_url}?maxev=5"))
                .send()
                .await?
                .json()
                .await?;
            let list = match events {
                Value::Array(list) => list,
                one => vec![one],
            };
            for event in list {
                if let Some(sdp) = event["jsep"]["sdp"].as_str() {
                    return Ok(sdp.to_owned());
                }
                if event["plugindata"]["data"]["error"].is_string() {
                    bail!("Janus: {}", event["plugindata"]["data"]["error"]);
                }
            }
        }
        bail!("Janus sent no offer within 15 s")
    }

    /// Sends our answer and asks Janus to start streaming.
    pub async fn start(&self, answer: &str) -> anyhow::Result<()> {
        post(
            &self.client,
            &self.handle_url,
            json!({"janus":"message","body":{"request":"start"},"jsep":{"type":"answer","sdp":answer}}),
        )
        .await?;
        Ok(())
    }

    /// Ends the session.
    pub async fn stop(self) {
        self.keepalive.abort();
        let _ = post(&self.client, &self.session_url, json!({"janus":"destroy"})).await;
    }
}
