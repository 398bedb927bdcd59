//! Sync checkpoints over real mutual TLS on loopback: after a round, each side's checkpoint is
//! past everything the other held, the operations it rightly left out included (a township's
//! own, sent up, never come back down; its county's, pulled down, never go back up), so the
//! next idle round walks nothing of the history before it.

mod common;

use common::{deputies, org};
use node_agent::mesh::Mesh;

use renda_store::{Cursor, Direction, Store};

/// The last local sequence of a store's log.
async fn log_end(store: &Store) -> anyhow::Result<u64> {
    let mut at = Cursor::START;
    loop {
        let page = store.ops_since(at, 1_000).await?;
        match page.last() {
            Some(op) => at = op.cursor,
            None => return Ok(at.local_seq),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_move_past_what_each_side_left_out() -> anyhow::Result<()> {
    renda_tls::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let (city, county, township) = (org(370_200), org(370_202), org(370_202_001));
    let mesh = Mesh::start(
        dir.path(),
        &[city, county, township],
        node_agent::domain::deputy_work(),
    )
    .await?;
    let t_store = mesh.node(township)?.store.clone();
    let c_store = mesh.node(county)?.store.clone();
    let key = county.to_string();

    // Only the township writes: everything the county holds for it is its own.
    deputies(&t_store, township, 40).await?;
    let first = mesh.sync(township).await?;
    assert_eq!((first.pushed, first.pulled), (40, 0), "{first:?}");
    // The pull runs beside the push, over the county's log as the session found it; the next
    // round's passes what the township pushed.
    let idle = mesh.sync(township).await?;
    assert_eq!((idle.pushed, idle.pulled), (0, 0), "{idle:?}");
    let pull = t_store.checkpoint(&key, Direction::Pull).await?;
    assert_eq!(
        pull.local_seq,
        log_end(&c_store).await?,
        "the township's pull checkpoint passes its own operations at the county"
    );

    // Only the county writes in the township's scope: the township pulls them and its push
    // checkpoint passes them on the next round, with nothing pushed.
    deputies(&c_store, township, 30).await?;
    let second = mesh.sync(township).await?;
    assert_eq!((second.pushed, second.pulled), (0, 30), "{second:?}");
    let idle = mesh.sync(township).await?;
    assert_eq!((idle.pushed, idle.pulled), (0, 0), "{idle:?}");
    let push = t_store.checkpoint(&key, Direction::Push).await?;
    assert_eq!(
        push.local_seq,
        log_end(&t_store).await?,
        "the township's push checkpoint passes what it pulled"
    );
    let pull = t_store.checkpoint(&key, Direction::Pull).await?;
    assert_eq!(
        pull.local_seq,
        log_end(&c_store).await?,
        "the pull checkpoint is at the county's log end"
    );
    assert_eq!(
        c_store
            .count_for_scope(township, pull, Some(&township.to_string()))
            .await?,
        0
    );
    assert_eq!(t_store.pending_push(&key).await?, 0);
    mesh.shutdown().await
}
