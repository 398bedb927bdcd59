//! A TCP proxy between two nodes that a test can cut and heal, like a township's link.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A link: connections to `addr()` are forwarded to the target while the link is up.
pub struct Link {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    /// Where new connections go: a restarted node listens on a new port.
    target: Arc<Mutex<SocketAddr>>,
}

impl Link {
    pub async fn start(target: SocketAddr) -> anyhow::Result<Link> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = watch::channel(0u64);
        let accepting = up.clone();
        let target = Arc::new(Mutex::new(target));
        let targets = target.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cuts = cuts.clone();
                // Only cuts after this connection was made close it.
                cuts.borrow_and_update();
                let target = *lock(&targets);
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut ri, mut wi) = inbound.into_split();
                    let (mut ro, mut wo) = outbound.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut ri, &mut wo) => {}
                        _ = tokio::io::copy(&mut ro, &mut wi) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Ok(Link {
            addr,
            up,
            cut,
            target,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn heal(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Sends new connections to `target` from now on.
    pub fn retarget(&self, target: SocketAddr) {
        *lock(&self.target) = target;
    }
}

fn lock(target: &Mutex<SocketAddr>) -> std::sync::MutexGuard<'_, SocketAddr> {
    // A socket address is written whole; a panic elsewhere cannot leave it half-written.
    target
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
