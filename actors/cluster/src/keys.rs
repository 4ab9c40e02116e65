//! The Redis keys and channels of a room. Every one carries the room in a hash tag
//! (`{room:<id>}`), so in a Redis Cluster a room's keys and channels live on one shard
//! and its sharded pub/sub never reaches the other shards.

/// `node|epoch` of the room's owner, with the lease as its expiry.
pub fn owner(room: &str) -> String {
    format!("lockstep:{{room:{room}}}:owner")
}

/// The room's ownership counter: every new owner takes the next value; it never expires.
pub fn epoch(room: &str) -> String {
    format!("lockstep:{{room:{room}}}:epoch")
}

/// What the room must not lose (its `Durable` state, JSON) and the epoch that wrote it.
pub fn checkpoint(room: &str) -> String {
    format!("lockstep:{{room:{room}}}:checkpoint")
}

/// Owner → nodes: broadcasts, frames for one session, closes, join answers.
pub fn down(room: &str) -> String {
    format!("lockstep:{{room:{room}}}:down")
}

/// Nodes → owner: joins, leaves, inputs, liveness.
pub fn up(room: &str) -> String {
    format!("lockstep:{{room:{room}}}:up")
}

/// Where node `node` answers HTTP (its `cluster.advertise_url`), while it is up.
pub fn node_url(node: &str) -> String {
    format!("lockstep:{{nodes}}:url:{node}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_rooms_keys_share_one_hash_tag() {
        for key in [
            super::owner("r1"),
            super::epoch("r1"),
            super::down("r1"),
            super::up("r1"),
        ] {
            assert!(key.contains("{room:r1}"), "{key}");
        }
    }
}
