//! The cost of the Broker seam on the broadcast path: one encoded frame pushed into N
//! session queues straight through the room's fan-out, and the same through the
//! in-process broker as rooms call it (`dyn Broker`). Each iteration also drains the
//! queues, as the sessions' writers would, so both variants do the same work around the
//! call under test. `cargo bench -p lockstep-actors --bench broadcast`

use std::sync::Arc as StdArc;

use bytestring::ByteString;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lockstep_actors::broker::{Broker, LocalBroker};
use lockstep_actors::outbound::Outbound;
use lockstep_actors::room::{Fanout, SessionId};
use lockstep_actors::sync::Arc;

fn room(sessions: u64) -> (Fanout, Vec<Arc<Outbound>>) {
    let mut fanout = Fanout::default();
    let queues: Vec<_> = (0..sessions).map(|_| Arc::new(Outbound::new(4))).collect();
    for (i, q) in queues.iter().enumerate() {
        fanout.add(SessionId(i as u64), q.clone());
    }
    (fanout, queues)
}

fn drain(queues: &[Arc<Outbound>], batch: &mut Vec<ByteString>) {
    for q in queues {
        q.drain(batch);
        batch.clear();
    }
}

fn bench(c: &mut Criterion) {
    let frame = ByteString::from(format!(
        r#"{{"type":"tick","at":1,"comments":[{{"text":"{}"}}]}}"#,
        "x".repeat(200)
    ));
    let broker: StdArc<dyn Broker> = StdArc::new(LocalBroker);
    let mut group = c.benchmark_group("broadcast");
    for sessions in [1_000u64, 10_000] {
        let (fanout, queues) = room(sessions);
        let mut batch = Vec::new();
        group.throughput(Throughput::Elements(sessions));
        group.bench_function(format!("fanout direct, {sessions} sessions"), |b| {
            b.iter(|| {
                let delivery = fanout.broadcast(&frame);
                drain(&queues, &mut batch);
                delivery.queued
            })
        });
        group.bench_function(format!("through the broker, {sessions} sessions"), |b| {
            b.iter(|| {
                let delivery = broker.publish("room", &frame, &fanout);
                drain(&queues, &mut batch);
                delivery.queued
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
