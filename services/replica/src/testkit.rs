//! A small schema and helpers shared by this crate's tests and benchmarks.

use crate::schema::Schema;
use crate::value::ValueType;

/// Kind 1 "note": text fields `title` (2) and `body` (3), integer `count` (4), a set `members`
/// (1) and an event `signed` (1) with a required text `by` (1).
/// Kind 2 "wide": 15 text fields numbered 2..=16, as in the storage benchmark.
pub fn schema() -> Schema {
    Schema::builder(1)
        .kind(1, "note", |k| {
            k.text(2, "title", 24)
                .text(3, "body", 200)
                .field(4, "count", ValueType::Int, 0)
                .set(1, "members")
                .event(1, "signed", &[(1, "by", ValueType::Text, true)])
        })
        .kind(2, "wide", |mut k| {
            for i in 0..15u16 {
                k = k.text(2 + i, &format!("f{i}"), 64);
            }
            k
        })
        .build()
        .expect("the test schema is well formed")
}
