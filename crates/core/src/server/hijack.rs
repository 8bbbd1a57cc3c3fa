//! Taking over a connection after a 101 response (generic `Upgrade`, not only WebSocket).

use bytes::{Bytes, BytesMut};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::Mutex;

use crate::error::{Error, Result};

enum State {
    Pending(OnUpgrade),
    Ready,
    Failed,
}

/// The raw byte stream of a connection taken over after a 101 response. Reads and writes may
/// run concurrently from different tasks.
pub struct RawConnection {
    reader: Mutex<Option<ReadHalf<TokioIo<Upgraded>>>>,
    writer: Mutex<Option<WriteHalf<TokioIo<Upgraded>>>>,
    state: Mutex<Option<State>>,
}

impl RawConnection {
    /// Wraps the upgrade future of a request; the connection is ready once the 101 is sent.
    pub fn new(on_upgrade: OnUpgrade) -> Self {
        RawConnection {
            reader: Mutex::new(None),
            writer: Mutex::new(None),
            state: Mutex::new(Some(State::Pending(on_upgrade))),
        }
    }

    async fn ready(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        match state.take() {
            Some(State::Pending(fut)) => match fut.await {
                Ok(upgraded) => {
                    let (r, w) = tokio::io::split(TokioIo::new(upgraded));
                    *self.reader.lock().await = Some(r);
                    *self.writer.lock().await = Some(w);
                    *state = Some(State::Ready);
                    Ok(())
                }
                Err(e) => {
                    *state = Some(State::Failed);
                    Err(Error::ConnectionReset(format!("upgrade failed: {e}")))
                }
            },
            Some(other) => {
                let failed = matches!(other, State::Failed);
                *state = Some(other);
                if failed {
                    Err(Error::ConnectionReset("upgrade failed".into()))
                } else {
                    Ok(())
                }
            }
            None => Err(Error::ConnectionReset("upgrade failed".into())),
        }
    }

    /// Reads up to `max` bytes; `None` when the peer closed its side.
    pub async fn read(&self, max: usize) -> Result<Option<Bytes>> {
        self.ready().await?;
        let mut guard = self.reader.lock().await;
        let Some(reader) = guard.as_mut() else {
            return Ok(None);
        };
        let mut buf = BytesMut::with_capacity(max.clamp(1, 1 << 20));
        let n = reader
            .read_buf(&mut buf)
            .await
            .map_err(|e| Error::from_io(e, "upgraded connection"))?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(buf.freeze()))
    }

    /// Writes all of `data`.
    pub async fn write(&self, data: &[u8]) -> Result<()> {
        self.ready().await?;
        let mut guard = self.writer.lock().await;
        let writer = guard
            .as_mut()
            .ok_or(Error::ConnectionReset("connection closed".into()))?;
        writer
            .write_all(data)
            .await
            .map_err(|e| Error::from_io(e, "upgraded connection"))?;
        writer
            .flush()
            .await
            .map_err(|e| Error::from_io(e, "upgraded connection"))
    }

    /// Closes the write side (sends FIN); the read side stays open until the peer closes.
    pub async fn shutdown(&self) -> Result<()> {
        self.ready().await?;
        let mut guard = self.writer.lock().await;
        if let Some(mut writer) = guard.take() {
            let _ = writer.shutdown().await;
        }
        Ok(())
    }

    /// Drops both halves, closing the connection.
    pub async fn destroy(&self) {
        self.reader.lock().await.take();
        self.writer.lock().await.take();
        *self.state.lock().await = Some(State::Failed);
    }
}
