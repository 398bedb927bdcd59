//! Core-only benchmark: how fast the pure CRDT core applies remote field writes in memory.
//!
//! `cargo bench -p renda-replica --bench core_apply`. Prints figures; asserts nothing.

use renda_replica::testkit;
use renda_replica::{ActorId, FieldId, KindId, Op, OrgCode, Outcome, RecordId, Replica, Value};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

const RECORDS: u32 = 10_000;
const OPS: usize = 100_000;

fn main() {
    let schema = Arc::new(testkit::schema());
    let org = OrgCode::new(370_202_001).expect("valid org");
    let mut a = Replica::new(ActorId(0xa11ce), org, schema.clone());
    let mut b = Replica::new(ActorId(0xb0b), org, schema.clone());
    let wide = KindId(2);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut now = 1_790_000_000_000u64;
    let mut ops: Vec<Op> = Vec::with_capacity(OPS);
    let mut value_bytes = 0usize;
    while ops.len() < OPS {
        let r = (next() % u64::from(RECORDS)) as u128;
        let record = RecordId(Uuid::from_u128(r + 1));
        let field = FieldId(2 + (next() % 15) as u16);
        let len = 8 + (next() % 17) as usize;
        let value: String = (0..len)
            .map(|_| (b'a' + (next() % 26) as u8) as char)
            .collect();
        value_bytes += len;
        // A fifth of the records are edited on both replicas.
        let replica = if r.is_multiple_of(5) && next().is_multiple_of(2) {
            &mut b
        } else {
            &mut a
        };
        now += 1;
        let op = replica
            .put(record, wide, field, Value::Text(value), now)
            .expect("valid write");
        ops.push(op);
    }
    let encoded: Vec<Vec<u8>> = ops.iter().map(Op::encode).collect();
    let bytes: usize = encoded.iter().map(Vec::len).sum();

    let mut best = f64::MAX;
    for _ in 0..5 {
        let mut c = Replica::new(ActorId(0xc), org, schema.clone());
        let batch = ops.clone();
        let start = Instant::now();
        for op in batch {
            let outcome = c.receive(op, now);
            debug_assert!(matches!(outcome, Outcome::Applied(_)));
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    let mut decode_best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for bytes in &encoded {
            std::hint::black_box(Op::decode(bytes, &schema).expect("valid op"));
        }
        decode_best = decode_best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "core apply (in memory): {:>12.0} field ops/s  (goal >= 1,000,000)",
        OPS as f64 / best
    );
    println!(
        "core decode+validate:   {:>12.0} ops/s",
        OPS as f64 / decode_best
    );
    println!(
        "encoded field write:    {:>12.1} bytes/op on average, of which value {:.1} bytes  (goal <= 64)",
        bytes as f64 / OPS as f64,
        value_bytes as f64 / OPS as f64
    );
}
