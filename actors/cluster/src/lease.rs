//! Room ownership: a lease in Redis holding `node|epoch`, set only when absent and
//! renewed by its owner; the epoch comes from a counter that never expires, so every new
//! owner of a room has a higher one than every owner before it (what fencing compares).

use crate::conn::RedisConn;
use redis::Script;

/// Who owns a room, as this node claimed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node: it runs the room.
    Owner { epoch: u64 },
    /// Another node runs it; this one is an edge.
    Edge { owner: String, epoch: u64 },
}

const CLAIM: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then
  local e = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. e, 'PX', ARGV[2])
  return {1, e, ARGV[1]}
end
local sep = string.find(cur, '|', 1, true)
local node = string.sub(cur, 1, sep - 1)
local e = tonumber(string.sub(cur, sep + 1))
if node == ARGV[1] then
  if ARGV[3] == '1' then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, e, node}
  end
  -- This node holds the lease but no longer runs the room (it restarted): a new run of
  -- the room is a new owner, with the next epoch.
  e = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. e, 'PX', ARGV[2])
  return {1, e, node}
end
return {0, e, node}
";
static CLAIM_SCRIPT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(CLAIM));

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";
static RENEW_SCRIPT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(RENEW));

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";
static RELEASE_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(RELEASE));

/// Claims, renews and releases this node's room leases.
#[derive(Clone)]
pub struct Leases {
    conn: RedisConn,
    node: String,
    lease_ms: u64,
}

impl Leases {
    pub fn new(conn: RedisConn, node: String, lease_ms: u64) -> Self {
        Self {
            conn,
            node,
            lease_ms,
        }
    }

    /// Takes the room when nobody holds it (with the next epoch), keeps it when this node
    /// does and `running` it (a node holding the lease of a room it does not run — it
    /// restarted — takes the next epoch), and otherwise says who does.
    pub async fn claim(&self, room: &str, running: bool) -> redis::RedisResult<Claim> {
        let (mine, epoch, owner): (u8, u64, String) = CLAIM_SCRIPT
            .key(crate::keys::owner(room))
            .key(crate::keys::epoch(room))
            .arg(&self.node)
            .arg(self.lease_ms)
            .arg(if running { "1" } else { "0" })
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(if mine == 1 {
            Claim::Owner { epoch }
        } else {
            Claim::Edge { owner, epoch }
        })
    }

    /// Who owns the room now, if anyone.
    pub async fn owner(&self, room: &str) -> redis::RedisResult<Option<(String, u64)>> {
        let value: Option<String> = redis::cmd("GET")
            .arg(crate::keys::owner(room))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(value.as_deref().and_then(parse))
    }

    /// Extends this node's lease on the room; `false` when it no longer holds it.
    pub async fn renew(&self, room: &str, epoch: u64) -> redis::RedisResult<bool> {
        let renewed: u8 = RENEW_SCRIPT
            .key(crate::keys::owner(room))
            .arg(self.value(epoch))
            .arg(self.lease_ms)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(renewed == 1)
    }

    /// Gives the room up (it ended), if this node still holds it.
    pub async fn release(&self, room: &str, epoch: u64) -> redis::RedisResult<()> {
        let _: u8 = RELEASE_SCRIPT
            .key(crate::keys::owner(room))
            .arg(self.value(epoch))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// A connection to the shared Redis, for other commands.
    pub fn conn(&self) -> RedisConn {
        self.conn.clone()
    }

    fn value(&self, epoch: u64) -> String {
        format!("{}|{epoch}", self.node)
    }
}

/// `node|epoch` → (node, epoch).
fn parse(value: &str) -> Option<(String, u64)> {
    let (node, epoch) = value.rsplit_once('|')?;
    Some((node.to_owned(), epoch.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn owner_values_parse() {
        assert_eq!(super::parse("n-1|7"), Some(("n-1".into(), 7)));
        assert_eq!(super::parse("n|x"), None);
        assert_eq!(super::parse("nobar"), None);
    }
}
