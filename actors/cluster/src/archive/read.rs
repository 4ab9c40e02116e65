//! Reading the archive from Redis: what the replay API and the dashboard need, the same
//! rows the single process reads from SQLite, plus the orders of the replay's sales from
//! the shared store.

use std::collections::HashMap;

use lockstep_actors::archive::STAY_BOUNDS_SECS;
use lockstep_actors::archive::report::{ReplayData, order_totals};
use lockstep_actors::archive::sqlite::{ChapterEdit, FunnelRow, ReplayRow, SeriesRow};
use lockstep_actors::store::StoreError;
use redis::RedisResult;

use super::keys;
use crate::conn::RedisConn;
use crate::storage::RedisStorage;

/// The archive's reading side in Redis.
#[derive(Clone)]
pub struct RedisReplays {
    conn: RedisConn,
    storage: RedisStorage,
}

fn failed(e: redis::RedisError) -> StoreError {
    StoreError::Unreachable(e.to_string())
}

/// A run's row. `open`: the room's open run; a run not ended and not open was left
/// behind by a node that stopped, and ends at its last second.
fn row_of(id: i64, meta: &HashMap<String, String>, open: Option<i64>) -> Option<ReplayRow> {
    let num = |k: &str| meta.get(k).and_then(|v| v.parse::<u64>().ok());
    let started_at = num("started_at")?;
    let ended_at = num("ended_at")
        .or_else(|| (open != Some(id)).then(|| num("last_at").unwrap_or(started_at)));
    Some(ReplayRow {
        id,
        room: meta.get("room")?.clone(),
        title: meta.get("title").cloned().unwrap_or_default(),
        members_only: num("members_only") != Some(0),
        started_at,
        ended_at,
        resolution_s: num("resolution_s").unwrap_or(1),
        dropped: num("dropped").unwrap_or(0),
    })
}

fn values(list: Vec<String>) -> Vec<serde_json::Value> {
    list.iter()
        .filter_map(|s| serde_json::from_str(s).ok())
        .collect()
}

impl RedisReplays {
    pub(crate) fn new(conn: RedisConn, storage: RedisStorage) -> Self {
        Self { conn, storage }
    }

    /// Replay `id`'s row, if it exists.
    pub async fn row(&self, id: i64) -> Result<Option<ReplayRow>, StoreError> {
        let meta: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(keys::of(id, "meta"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(failed)?;
        let open = match meta.get("room").filter(|_| !meta.contains_key("ended_at")) {
            Some(room) => redis::cmd("GET")
                .arg(keys::open(room))
                .query_async(&mut self.conn.clone())
                .await
                .map_err(failed)?,
            None => None,
        };
        Ok(row_of(id, &meta, open))
    }

    /// The node that ran replay `id`'s room when its run began (where it was recorded).
    pub async fn node_of(&self, id: i64) -> Result<Option<String>, StoreError> {
        redis::cmd("HGET")
            .arg(keys::of(id, "meta"))
            .arg("node")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(failed)
    }

    /// The replays of `room`, newest first (at most `limit`).
    pub async fn list(&self, room: &str, limit: usize) -> Result<Vec<ReplayRow>, StoreError> {
        let ids: Vec<i64> = redis::cmd("ZREVRANGE")
            .arg(keys::room(room))
            .arg(0)
            .arg(limit.saturating_sub(1))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(failed)?;
        let mut out = Vec::new();
        for id in ids {
            match self.row(id).await? {
                Some(row) => out.push(row),
                // Expired after retention: forget it.
                None => {
                    let _: RedisResult<()> = redis::cmd("ZREM")
                        .arg(keys::room(room))
                        .arg(id)
                        .query_async(&mut self.conn.clone())
                        .await;
                }
            }
        }
        Ok(out)
    }

    /// Up to `limit` events after position `after`, with their positions (1-based).
    pub async fn events_after(
        &self,
        id: i64,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, serde_json::Value)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let after = after.clamp(0, i64::MAX / 2);
        let list: Vec<String> = redis::cmd("LRANGE")
            .arg(keys::of(id, "events"))
            .arg(after)
            .arg(after + limit as i64 - 1)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(failed)?;
        Ok(list
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((after + i as i64 + 1, serde_json::from_str(s).ok()?)))
            .collect())
    }

    /// Events of one of the kinds kept apart (`link`, `sale`, `moderation`), in order.
    pub async fn events_of_kind(
        &self,
        id: i64,
        kind: &str,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let list: Vec<String> = redis::cmd("LRANGE")
            .arg(keys::of(id, &format!("kind:{kind}")))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(failed)?;
        Ok(values(list))
    }

    async fn hash(&self, key: String) -> Result<HashMap<String, String>, StoreError> {
        redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(failed)
    }

    /// Everything the report needs of replay `row`, the orders of its sales included.
    pub async fn data(&self, row: &ReplayRow, now: u64) -> Result<ReplayData, StoreError> {
        let id = row.id;
        let mut series: HashMap<u64, SeriesRow> = HashMap::new();
        for name in keys::SERIES {
            for (t, v) in self.hash(keys::of(id, &format!("series:{name}"))).await? {
                let (Ok(t), Ok(v)) = (t.parse::<u64>(), v.parse::<u64>()) else {
                    continue;
                };
                let point = series.entry(t).or_insert(SeriesRow {
                    t,
                    online: 0,
                    joins: 0,
                    leaves: 0,
                    comments: 0,
                    likes: 0,
                });
                match name {
                    "online" => point.online = v,
                    "joins" => point.joins = v,
                    "leaves" => point.leaves = v,
                    "comments" => point.comments = v,
                    _ => point.likes = v,
                }
            }
        }
        let mut series: Vec<SeriesRow> = series.into_values().collect();
        series.sort_by_key(|p| p.t);
        let mut funnel: HashMap<String, FunnelRow> = HashMap::new();
        for (field, n) in self.hash(keys::of(id, "funnel")).await? {
            let (Some((sale, step)), Ok(n)) = (field.rsplit_once('|'), n.parse::<u64>()) else {
                continue;
            };
            let row = funnel.entry(sale.to_owned()).or_insert(FunnelRow {
                sale_id: sale.to_owned(),
                shown: 0,
                clicked: 0,
            });
            if step == "shown" {
                row.shown = n;
            } else {
                row.clicked = n;
            }
        }
        let mut stays = vec![0; STAY_BOUNDS_SECS.len() + 1];
        for (bucket, n) in self.hash(keys::of(id, "stays")).await? {
            if let (Ok(b), Ok(n)) = (bucket.parse::<usize>(), n.parse::<u64>())
                && let Some(slot) = stays.get_mut(b)
            {
                *slot = n;
            }
        }
        let edits = self
            .hash(keys::of(id, "edits"))
            .await?
            .into_iter()
            .filter_map(|(sale_id, v)| {
                let e: serde_json::Value = serde_json::from_str(&v).ok()?;
                Some(ChapterEdit {
                    sale_id,
                    title: e["title"].as_str().map(str::to_owned),
                    hidden: e["hidden"].as_bool().unwrap_or(false),
                })
            })
            .collect();
        let links = self.events_of_kind(id, "link").await?;
        let mut sales = Vec::new();
        for sale in links.iter().filter_map(|l| l["sale_id"].as_str()) {
            if !sales.iter().any(|(s, _, _)| s == sale) {
                let (orders, price) = self.storage.orders_and_price(sale).await?;
                sales.push((sale.to_owned(), price, orders));
            }
        }
        let end = row.ended_at.unwrap_or(now);
        let (totals, seconds, chapters) = order_totals(&sales, id, row.started_at, end);
        Ok(ReplayData {
            series,
            links,
            sale_events: self.events_of_kind(id, "sale").await?,
            funnel: funnel.into_values().collect(),
            stays,
            edits,
            sales: totals,
            orders: seconds,
            replay_orders: chapters,
        })
    }

    /// Records the anchor's edit of a chapter (`None` leaves that part as it was).
    pub async fn edit_chapter(
        &self,
        id: i64,
        sale_id: &str,
        title: Option<&str>,
        hidden: Option<bool>,
    ) -> Result<(), StoreError> {
        let key = keys::of(id, "edits");
        let current: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg(sale_id)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(failed)?;
        let mut edit: serde_json::Value = current
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_else(|| serde_json::json!({"title": null, "hidden": false}));
        if let Some(title) = title {
            edit["title"] = title.into();
        }
        if let Some(hidden) = hidden {
            edit["hidden"] = hidden.into();
        }
        let ttl: i64 = redis::cmd("TTL")
            .arg(keys::of(id, "meta"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(failed)?;
        let mut pipe = redis::pipe();
        pipe.cmd("HSET")
            .arg(&key)
            .arg(sale_id)
            .arg(edit.to_string())
            .ignore();
        if ttl > 0 {
            pipe.cmd("EXPIRE").arg(&key).arg(ttl).ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(fields: &[(&str, &str)]) -> HashMap<String, String> {
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_run_left_open_by_a_stopped_node_ends_at_its_last_second() {
        let m = meta(&[
            ("room", "r1"),
            ("started_at", "1000"),
            ("last_at", "9000"),
            ("members_only", "0"),
        ]);
        assert_eq!(row_of(7, &m, Some(7)).unwrap().ended_at, None, "still open");
        assert_eq!(row_of(7, &m, None).unwrap().ended_at, Some(9000));
        assert_eq!(
            row_of(7, &m, Some(8)).unwrap().ended_at,
            Some(9000),
            "a newer run"
        );
        let ended = meta(&[("room", "r1"), ("started_at", "1000"), ("ended_at", "5000")]);
        let row = row_of(7, &ended, None).unwrap();
        assert_eq!(row.ended_at, Some(5000));
        assert!(
            row.members_only,
            "members only unless the room said otherwise"
        );
        assert!(
            row_of(7, &meta(&[("title", "x")]), None).is_none(),
            "no run"
        );
    }
}
