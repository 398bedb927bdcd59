//! `node-agent status` reaches the local node whatever address it listens on: the shipped
//! configs listen on `0.0.0.0`, which no certificate names.

use std::net::{Ipv4Addr, SocketAddr};

use node_agent::mesh::Mesh;
use renda_replica::OrgCode;

#[tokio::test]
async fn status_reaches_a_node_listening_on_every_address() -> anyhow::Result<()> {
    renda_tls::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let city = OrgCode::new(370_200)?;
    let county = OrgCode::new(370_202)?;
    let mut mesh = Mesh::start(
        dir.path(),
        &[city, county],
        node_agent::domain::deputy_work(),
    )
    .await?;
    // The county again, now listening on 0.0.0.0 as the shipped configs do.
    let mut config = mesh.stop(county).await?;
    let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port();
    config.listen.grpc = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let (node, task) = node_agent::node::start(
        &config,
        node_agent::domain::deputy_work(),
        std::future::pending(),
    )
    .await?;
    node_agent::cli::status(&config, true).await?;
    // Another node's certificate answering there is refused: the command wants the node's own.
    let mut other = config.clone();
    other.tls = mesh.members[&city].config.tls.clone();
    let err = node_agent::cli::status(&other, true)
        .await
        .expect_err("a status call presenting the city's certificate reached the county");
    assert!(format!("{err:#}").contains("asking the node"), "{err:#}");
    node.stop();
    task.await??;
    mesh.shutdown().await
}
