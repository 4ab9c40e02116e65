//! The node's connections to Redis, one type whether Redis is a single server or a
//! Redis Cluster: commands, scripts and pipelines go through [`RedisConn`] (a Cluster
//! routes each by its key's hash slot), and subscriptions through [`Subscriber`] (plain
//! pub/sub on a single server, sharded pub/sub on a Cluster, so a room's messages stay on
//! the shard its hash tag names).
//!
//! A Redis Cluster connection is watched: when every node of the Cluster went away at
//! once (a full restart), the client library can keep failing to find any node long after
//! they are back; a connection whose pings fail for a few seconds is replaced by a new one.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{Cmd, Pipeline, PushInfo, RedisFuture, RedisResult, Value};
use tokio::sync::mpsc;

/// Where the nodes' Redis is: one server, or the seed nodes of a Redis Cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    Single(String),
    Cluster(Vec<String>),
}

impl Topology {
    /// Reads `cluster.redis_url`: a comma-separated list is a Redis Cluster's seed nodes;
    /// a single URL is whatever that server says it is (`cluster_enabled` in `INFO`).
    pub async fn discover(redis_url: &str) -> RedisResult<Self> {
        let urls: Vec<String> = redis_url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(resp3)
            .collect();
        if urls.len() != 1 {
            return Ok(Self::Cluster(urls));
        }
        let client = redis::Client::open(urls[0].as_str())?;
        let mut probe = client
            .get_multiplexed_async_connection_with_config(
                &redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(2))),
            )
            .await?;
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut probe)
            .await?;
        Ok(if info.contains("cluster_enabled:1") {
            Self::Cluster(urls)
        } else {
            Self::Single(urls[0].clone())
        })
    }

    /// A command connection that fails fast while Redis is away: requests are refused
    /// `unavailable` within a second or two, never left hanging.
    pub async fn connect(&self) -> RedisResult<RedisConn> {
        match self {
            Self::Single(url) => {
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500))
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    .set_response_timeout(Some(Duration::from_secs(2)));
                let client = redis::Client::open(url.as_str())?;
                Ok(RedisConn::Single(
                    client.get_connection_manager_with_config(config).await?,
                ))
            }
            Self::Cluster(urls) => {
                let handle = ClusterHandle::connect(cluster_client(urls, None)?).await?;
                tokio::spawn(handle.clone().watch());
                Ok(RedisConn::Cluster(handle))
            }
        }
    }

    /// A subscription connection whose pushed messages (and disconnection notices) go to
    /// `pushes`; it resubscribes on its own after reconnecting.
    pub async fn subscriber(
        &self,
        pushes: mpsc::UnboundedSender<PushInfo>,
    ) -> RedisResult<Subscriber> {
        match self {
            Self::Single(url) => {
                let config = ConnectionManagerConfig::new()
                    .set_push_sender(pushes)
                    .set_automatic_resubscription();
                let client = redis::Client::open(url.as_str())?;
                Ok(Subscriber::Single(
                    client.get_connection_manager_with_config(config).await?,
                ))
            }
            Self::Cluster(urls) => {
                let client = cluster_client(urls, Some(pushes))?;
                Ok(Subscriber::Cluster(ClusterHandle::connect(client).await?))
            }
        }
    }
}

fn cluster_client(
    urls: &[String],
    pushes: Option<mpsc::UnboundedSender<PushInfo>>,
) -> RedisResult<redis::cluster::ClusterClient> {
    let mut builder = redis::cluster::ClusterClientBuilder::new(urls.to_vec())
        .use_protocol(redis::ProtocolVersion::RESP3)
        .retries(1)
        .connection_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_secs(2));
    if let Some(pushes) = pushes {
        builder = builder.push_sender(pushes);
    }
    builder.build()
}

/// The URL with RESP3 asked for (pushed pub/sub messages on a normal connection).
fn resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

/// A Redis Cluster connection that can be replaced under its users.
#[derive(Clone)]
pub struct ClusterHandle {
    client: Arc<redis::cluster::ClusterClient>,
    current: Arc<RwLock<ClusterConnection>>,
    /// Consecutive failed pings.
    failures: Arc<std::sync::atomic::AtomicU32>,
}

/// Failed pings (one a second) after which a Cluster connection is replaced.
const STUCK_AFTER: u32 = 3;

impl ClusterHandle {
    async fn connect(client: redis::cluster::ClusterClient) -> RedisResult<Self> {
        let conn = client.get_async_connection().await?;
        Ok(Self {
            client: Arc::new(client),
            current: Arc::new(RwLock::new(conn)),
            failures: Arc::default(),
        })
    }

    /// The connection in use now.
    fn get(&self) -> ClusterConnection {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Pings every primary; after [`STUCK_AFTER`] failures in a row, connects anew and
    /// puts the new connection in place. Returns whether it did.
    async fn ping_or_replace(&self) -> bool {
        use std::sync::atomic::Ordering;
        let ping: RedisResult<Value> = redis::cmd("PING").query_async(&mut self.get()).await;
        if ping.is_ok() {
            self.failures.store(0, Ordering::Relaxed);
            return false;
        }
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 < STUCK_AFTER {
            return false;
        }
        let Ok(fresh) = self.client.get_async_connection().await else {
            return false;
        };
        tracing::warn!("the Redis Cluster connection did not recover on its own; replaced it");
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        self.failures.store(0, Ordering::Relaxed);
        true
    }

    /// Watches a command connection for as long as it is used.
    async fn watch(self) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        while Arc::strong_count(&self.current) > 1 {
            every.tick().await;
            self.ping_or_replace().await;
        }
    }
}

/// A command connection to the nodes' Redis; cheap to clone (clones share it).
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterHandle),
}

impl RedisConn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// The publishing command: sharded on a Cluster, so a message only reaches the shard
    /// of its channel's hash tag.
    pub fn publish_command(&self) -> &'static str {
        if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// `cmd`'s answer from every primary (one answer on a single server).
    pub async fn on_every_primary(&mut self, cmd: Cmd) -> RedisResult<Vec<Value>> {
        match self {
            Self::Single(conn) => Ok(vec![cmd.query_async(conn).await?]),
            Self::Cluster(conn) => {
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                match conn.get().route_command(cmd, routing).await? {
                    Value::Map(answers) => Ok(answers.into_iter().map(|(_, v)| v).collect()),
                    other => Ok(vec![other]),
                }
            }
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => {
                let mut conn = conn.get();
                Box::pin(async move { conn.req_packed_command(cmd).await })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => {
                let mut conn = conn.get();
                Box::pin(async move { conn.req_packed_commands(pipeline, offset, count).await })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get().get_db(),
        }
    }
}

/// The node's subscription connection.
#[derive(Clone)]
pub enum Subscriber {
    Single(ConnectionManager),
    Cluster(ClusterHandle),
}

impl Subscriber {
    /// Subscribes; returns once Redis confirmed.
    pub async fn subscribe(&self, channel: &str) -> RedisResult<()> {
        match self {
            Self::Single(conn) => conn.clone().subscribe(channel).await,
            Self::Cluster(conn) => conn.get().ssubscribe(channel).await,
        }
    }

    pub async fn unsubscribe(&self, channel: &str) -> RedisResult<()> {
        match self {
            Self::Single(conn) => conn.clone().unsubscribe(channel).await,
            Self::Cluster(conn) => conn.get().sunsubscribe(channel).await,
        }
    }

    /// Pings (every primary on a Cluster), so a dead connection is noticed and the client
    /// keeps reconnecting even when nothing else is sent. Returns whether a stuck Cluster
    /// connection was replaced (its subscriptions are gone: subscribe again).
    pub async fn ping(&self) -> bool {
        match self {
            Self::Single(conn) => {
                let _: RedisResult<String> =
                    redis::cmd("PING").query_async(&mut conn.clone()).await;
                false
            }
            Self::Cluster(conn) => conn.ping_or_replace().await,
        }
    }
}

/// The hash tag of `key` as Redis reads it (the text between the first `{` and the next
/// `}`, when not empty), or the whole key: keys with the same tag share a hash slot.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{')
        && let Some(len) = key[open + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

#[cfg(test)]
mod tests {
    use super::hash_tag;

    #[test]
    fn a_hash_tag_is_the_first_non_empty_braces() {
        assert_eq!(hash_tag(b"lockstep:{room:r1}:down"), b"room:r1");
        assert_eq!(hash_tag(b"a{b}{c}"), b"b");
        assert_eq!(hash_tag(b"plain"), b"plain");
        assert_eq!(hash_tag(b"a{}b{c}"), b"a{}b{c}");
        assert_eq!(hash_tag(b"a{open"), b"a{open");
    }

    #[test]
    fn a_list_of_urls_is_a_cluster_and_asks_for_resp3() {
        let seeds = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(super::Topology::discover(
                "redis://127.0.0.1:1, redis://127.0.0.1:2",
            ))
            .unwrap();
        assert_eq!(
            seeds,
            super::Topology::Cluster(vec![
                "redis://127.0.0.1:1?protocol=resp3".into(),
                "redis://127.0.0.1:2?protocol=resp3".into(),
            ])
        );
    }
}
