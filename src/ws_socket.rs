//! A session's WebSocket on its own TCP socket, after the upgrade: the reader decodes
//! the client's frames (actix-http's codec, fragments joined by [`Joiner`]) from a
//! buffer that holds only bytes not yet decoded and is released when empty, so an idle
//! viewer keeps no read buffer; the writer sends a batch of frames with vectored writes,
//! each frame's header beside its payload, the shared payload bytes never copied.

use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, ProtocolError};
use bytes::BytesMut;
use bytestring::ByteString;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

use crate::ws_wire::{
    Joiner, MAX_SLICES, Message, OpCode, OutFrame, close_payload, pending_slices, stop_point,
};

/// The most one read takes from the socket (a stack buffer, copied out as decoded
/// bytes wait for the rest of their frame).
const READ_CHUNK: usize = 4096;

/// The reading half: whole messages from the client.
pub struct Reader {
    socket: OwnedReadHalf,
    buf: BytesMut,
    codec: Codec,
    joiner: Joiner,
    eof: bool,
}

impl Reader {
    /// `leftover`: bytes read with the upgrade request; frames and messages over
    /// `max_bytes` are refused with [`ProtocolError::Overflow`].
    pub fn new(socket: OwnedReadHalf, leftover: BytesMut, max_bytes: usize) -> Self {
        Self {
            socket,
            buf: leftover,
            codec: Codec::new().max_size(max_bytes),
            joiner: Joiner::new(max_bytes),
            eof: false,
        }
    }

    /// The next whole message, `None` once the client shut its side. Cancel-safe: what
    /// was read stays in the reader.
    pub async fn next(&mut self) -> Option<Result<Message, ProtocolError>> {
        loop {
            match self.decode() {
                Ok(Some(message)) => return Some(Ok(message)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            if self.eof {
                return None;
            }
            match poll_fn(|cx| self.poll_read_some(cx)).await {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => return Some(Err(ProtocolError::Io(e))),
            }
        }
    }

    /// Reads and drops what the client still sends until it shuts its side: closing a
    /// socket with unread bytes resets it, which can lose the close frame just written.
    pub async fn drain(&mut self) {
        while !self.eof {
            match poll_fn(|cx| self.poll_read_some(cx)).await {
                Ok(0) => self.eof = true,
                Ok(_) => self.buf.clear(),
                Err(_) => return,
            }
        }
    }

    /// One read of what the socket holds into the buffer (0 at the client's EOF). The
    /// chunk lives only for this poll, so a waiting reader holds no buffer; and tokio's
    /// `poll_read` takes a short read to mean the socket is empty, so a frame costs one
    /// system call, not a second one that only finds nothing more.
    fn poll_read_some(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut chunk = [0u8; READ_CHUNK];
        let mut read = ReadBuf::new(&mut chunk);
        match Pin::new(&mut self.socket).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => {
                self.buf.extend_from_slice(read.filled());
                Poll::Ready(Ok(read.filled().len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn decode(&mut self) -> Result<Option<Message>, ProtocolError> {
        let message = loop {
            let Some(frame) = self.codec.decode(&mut self.buf)? else {
                break None;
            };
            let data_frame = matches!(frame, Frame::Text(_) | Frame::Binary(_));
            if data_frame && self.joiner.in_progress() {
                return Err(ProtocolError::ContinuationStarted);
            }
            break Some(match frame {
                Frame::Text(bytes) => Message::Text(ByteString::try_from(bytes).map_err(|e| {
                    ProtocolError::Io(io::Error::new(io::ErrorKind::InvalidData, e))
                })?),
                Frame::Binary(bytes) => Message::Binary(bytes),
                Frame::Ping(bytes) => Message::Ping(bytes),
                Frame::Pong(bytes) => Message::Pong(bytes),
                Frame::Close(_) => Message::Close,
                Frame::Continuation(item) => match self.joiner.push(item)? {
                    Some(message) => message,
                    None => continue,
                },
            });
        };
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
        Ok(message)
    }
}

/// How a batch write ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// Every frame is on the socket.
    All,
    /// `stop` resolved: the frame in flight was finished, the rest dropped.
    Stopped,
}

/// Writes `frames` in as few system calls as the socket allows. If `stop` resolves
/// first, only the frame already begun is finished (the stream stays well formed),
/// within `grace`, else the write fails with `TimedOut`.
pub async fn write_frames(
    socket: &TcpStream,
    frames: &[OutFrame],
    stop: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<Written> {
    let mut limit: usize = frames.iter().map(OutFrame::len).sum();
    let mut done = 0;
    let mut deadline = None;
    tokio::pin!(stop);
    while done < limit {
        match try_write(socket, frames, done, limit) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                done += n;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        tokio::select! {
            biased;
            ready = socket.writable() => ready?,
            () = &mut stop, if deadline.is_none() => {
                limit = stop_point(frames, done);
                deadline = Some(tokio::time::Instant::now() + grace);
            }
            () = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)),
                if deadline.is_some() => return Err(io::ErrorKind::TimedOut.into()),
        }
    }
    Ok(if deadline.is_some() {
        Written::Stopped
    } else {
        Written::All
    })
}

/// One vectored write of what is left of the batch (its slices on this call's stack).
fn try_write(
    socket: &TcpStream,
    frames: &[OutFrame],
    done: usize,
    limit: usize,
) -> io::Result<usize> {
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    let count = pending_slices(frames, done, limit, &mut slices);
    socket.try_write_vectored(&slices[..count])
}

/// Writes the close frame (within `grace`) and shuts the sending side.
pub async fn write_close(socket: &TcpStream, code: u16, reason: &str, grace: Duration) {
    let close = [OutFrame::new(
        OpCode::Close,
        close_payload(code, reason).into(),
    )];
    let _ = tokio::time::timeout(
        grace,
        write_frames(socket, &close, std::future::pending(), grace),
    )
    .await;
    let _ = socket2::SockRef::from(socket).shutdown(Shutdown::Write);
}
