//! A WebSocket client speaking the Lockstep protocol, as a test drives it: send, receive
//! until something arrives, and see how the socket ended.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use lockstep_protocol::ServerMsg;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::EVENT_TIMEOUT;

/// A WebSocket client speaking the Lockstep protocol.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended, as seen by the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Closed(u16),
    ClosedWithoutCode,
    Eof,
}

impl Client {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connect");
        Self { ws }
    }

    /// Connects, or `None` when the server is not there (a test that kills it).
    pub async fn try_connect(url: &str) -> Option<Self> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
        Some(Self { ws })
    }

    /// Connects with a tiny kernel receive buffer, so a client that stops reading stalls
    /// the server's writes after kilobytes rather than megabytes.
    pub async fn connect_small_buffer(addr: SocketAddr, url: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(addr).await.expect("tcp connect");
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .expect("websocket handshake");
        Self { ws }
    }

    pub async fn send(&mut self, msg: Value) {
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .expect("send");
    }

    /// Sends several frames in one write, so the server reads them together.
    pub async fn send_together(&mut self, msgs: &[Value]) {
        for msg in msgs {
            self.ws
                .feed(Message::text(msg.to_string()))
                .await
                .expect("feed");
        }
        self.ws.flush().await.expect("flush");
    }

    /// Sends, reporting failure instead of panicking (for sockets that may die).
    pub async fn try_send(&mut self, msg: Value) -> Result<(), ()> {
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .map_err(|_| ())
    }

    /// Like `recv_until`, but `None` when the socket ends or errors.
    pub async fn try_recv_until<T>(
        &mut self,
        mut pick: impl FnMut(&ServerMsg) -> Option<T>,
    ) -> Option<T> {
        loop {
            let frame = tokio::time::timeout(EVENT_TIMEOUT, self.ws.next())
                .await
                .ok()??
                .ok()?;
            match frame {
                Message::Text(t) => {
                    if let Ok(msg) = serde_json::from_str::<ServerMsg>(&t)
                        && let Some(v) = pick(&msg)
                    {
                        return Some(v);
                    }
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Sends a raw frame, reporting failure instead of panicking.
    pub async fn try_send_raw(&mut self, msg: Message) -> Result<(), ()> {
        self.ws.send(msg).await.map_err(|_| ())
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("send");
    }

    /// The next protocol message; panics on timeout or close.
    pub async fn recv(&mut self) -> ServerMsg {
        loop {
            let frame = tokio::time::timeout(EVENT_TIMEOUT, self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("socket ended")
                .expect("socket error");
            match frame {
                Message::Text(t) => {
                    return serde_json::from_str(&t)
                        .unwrap_or_else(|e| panic!("bad frame {t}: {e}"));
                }
                Message::Close(c) => panic!("socket closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// Receives until `pick` returns a value; other frames are skipped.
    pub async fn recv_until<T>(&mut self, mut pick: impl FnMut(&ServerMsg) -> Option<T>) -> T {
        loop {
            let msg = self.recv().await;
            if let Some(v) = pick(&msg) {
                return v;
            }
        }
    }

    /// Reads until the socket ends; returns how.
    pub async fn ended(&mut self) -> Ended {
        loop {
            let next = tokio::time::timeout(EVENT_TIMEOUT, self.ws.next())
                .await
                .expect("timed out waiting for close");
            match next {
                None | Some(Err(_)) => return Ended::Eof,
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Ended::Closed(u16::from(frame.code));
                }
                Some(Ok(Message::Close(None))) => return Ended::ClosedWithoutCode,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Reads until the socket ends and returns the error frames seen before it.
    pub async fn errors_then_end(&mut self) -> (Vec<u16>, Ended) {
        let mut errors = Vec::new();
        loop {
            let next = tokio::time::timeout(EVENT_TIMEOUT, self.ws.next())
                .await
                .expect("timed out waiting for close");
            match next {
                None | Some(Err(_)) => return (errors, Ended::Eof),
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (errors, Ended::Closed(u16::from(frame.code)));
                }
                Some(Ok(Message::Close(None))) => return (errors, Ended::ClosedWithoutCode),
                Some(Ok(Message::Text(t))) => {
                    if let Ok(ServerMsg::Error { code, .. }) = serde_json::from_str(&t) {
                        errors.push(code);
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Splits into a sender and a task that keeps reading (so a client that mostly talks
    /// is not cut as a slow consumer), forwarding the ids of acks it sees.
    pub fn split_acks(
        self,
    ) -> (
        futures_util::stream::SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>,
        tokio::sync::mpsc::UnboundedReceiver<u64>,
    ) {
        let (sink, mut stream) = self.ws.split();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            // Until the socket ends; pings (answered by the library) and other
            // non-text frames are skipped.
            while let Some(Ok(frame)) = stream.next().await {
                if let Message::Text(t) = frame
                    && let Ok(ServerMsg::Ack { id: Some(id), .. }) = serde_json::from_str(&t)
                {
                    let _ = tx.send(id);
                }
            }
        });
        (sink, rx)
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// The numeric code of a close frame code, for comparisons.
pub fn close_code(code: WsCloseCode) -> u16 {
    u16::from(code)
}

/// The error code of an `error` frame.
pub fn error_code(msg: &ServerMsg) -> Option<u16> {
    match msg {
        ServerMsg::Error { code, .. } => Some(*code),
        _ => None,
    }
}
