// The viewer page's live video: one receive-only WebRTC subscription, negotiated over the
// room WebSocket (`rtc_offer` → `rtc_answer`), played out with the room's common delay
// (`jitterBufferTarget`), replaced when it fails or stalls; the simulcast layer picker;
// and the per-frame log (`requestVideoFrameCallback`) used to compare viewers' pictures.
//
// It owns the `<video>` element, the unmute button and the layer picker. Everything else
// on the page reaches it through `createViewerMedia`'s return value.

import { iceGatheringComplete, perfNow } from './common.js';

/** Frames kept in `lockstep.frames`. */
const MAX_FRAMES = 600;
/** Entries kept in `lockstep.mediaLog`. */
const MAX_LOG = 100;
/** Largest jitter-buffer target a browser accepts, ms. */
const MAX_JITTER_TARGET_MS = 4000;
/** A connected subscription that decodes no video frame for this long is replaced. */
const STALL_MS = 8000;

/**
 * Starts the media side of the viewer page.
 *
 * - `st`: the page state. Read: `final`. Read and written: `media` (`{live,
 *   playout_delay_ms}`), `mediaError`, `playing`.
 * - `lockstep`: the test hooks. Written: `pc`, `media`, `mediaError`, `frames`,
 *   `mediaLog`, `stallResubscribes`, `errors`.
 * - `ui`: `{video, unmute, layer}`.
 * - `channel`: the room WebSocket as used here: `send(msg)` (false when not joined),
 *   `request(msg)` (a promise of the reply carrying the same id), `nextId()` (a fresh
 *   request id) and `clockOffsetMs()` (server time minus `perfNow()`).
 * - `render()`: redraws the stage after `st.media`, `st.mediaError` or `st.playing`
 *   changed.
 *
 * Returns `{onMedia, onAnswer, onError, close}`: `onMedia(media)` for the welcome's and
 * broadcast `media` state, `onAnswer(msg)` for `rtc_answer`, `onError(msg)` for `error`
 * (true when it answered a pending offer), `close()` to drop the subscription.
 */
export function createViewerMedia({ st, lockstep, ui, channel, render }) {
  let layer = 'auto';
  /** Bumped by `close()`; callbacks of an older subscription compare and give up. */
  let pcGen = 0;
  /** The offer waiting for its answer: `{id, resolve}`. */
  let rtcWaiter = null;
  let retryTimer = null;

  function log(event, detail) {
    lockstep.mediaLog.push({ at: Math.round(perfNow()), event, ...(detail === undefined ? {} : { detail }) });
    if (lockstep.mediaLog.length > MAX_LOG) lockstep.mediaLog.shift();
  }

  function close() {
    pcGen += 1;
    clearTimeout(retryTimer);
    if (rtcWaiter) rtcWaiter.resolve(null);
    rtcWaiter = null;
    if (lockstep.pc) lockstep.pc.close();
    lockstep.pc = null;
    st.playing = false;
    if (ui.video.srcObject) ui.video.srcObject = null;
  }

  function playoutDelayMs() {
    const ms = Number(st.media.playout_delay_ms) || 0;
    return Math.max(0, Math.min(MAX_JITTER_TARGET_MS, ms));
  }

  /** Every viewer plays out with the same delay, so their pictures (and the link) line up. */
  function applyPlayoutDelay(pc) {
    if (!pc) return;
    for (const r of pc.getReceivers()) {
      if ('jitterBufferTarget' in r) {
        try {
          r.jitterBufferTarget = playoutDelayMs();
        } catch (e) {
          lockstep.errors.push(`jitterBufferTarget: ${e.message}`);
        }
      }
    }
  }

  /** Waits for the server's answer to our offer: `rtc_answer`, or an `error` naming our
   * request id (or a media error without one). Resolves `null` when abandoned. */
  function awaitRtcAnswer(id, timeoutMs = 15000) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        rtcWaiter = null;
        resolve({ type: 'error', name: 'timeout', message: 'The video server did not answer.' });
      }, timeoutMs);
      rtcWaiter = {
        id,
        resolve: (msg) => {
          clearTimeout(timer);
          rtcWaiter = null;
          resolve(msg);
        },
      };
    });
  }

  async function subscribe() {
    close();
    if (st.final || !st.media.live) return;
    const gen = pcGen;
    st.mediaError = null;
    render();
    log('subscribe', gen);
    const pc = new RTCPeerConnection();
    lockstep.pc = pc;
    const stream = new MediaStream();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    applyPlayoutDelay(pc);
    pc.addEventListener('track', (ev) => {
      log('track', ev.track.kind);
      stream.addTrack(ev.track);
      applyPlayoutDelay(pc);
      if (ui.video.srcObject !== stream) ui.video.srcObject = stream;
      ui.video.play().catch(() => {});
    });
    pc.addEventListener('connectionstatechange', () => {
      log('connection', `${gen}:${pc.connectionState}`);
      if (gen !== pcGen) return;
      if (pc.connectionState === 'failed') {
        st.mediaError = { name: 'connection_failed', message: 'The video connection failed; retrying…' };
        st.playing = false;
        render();
        scheduleResubscribe(2000);
      }
    });
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringComplete(pc);
    } catch (e) {
      st.mediaError = { name: 'webrtc', message: `This browser could not start the video: ${e.message}` };
      render();
      return;
    }
    if (gen !== pcGen) return;
    const id = channel.nextId();
    const answer = awaitRtcAnswer(id);
    const offer = { type: 'rtc_offer', sdp: pc.localDescription.sdp, id };
    if (layer !== 'auto') offer.layer = layer;
    if (!channel.send(offer)) {
      rtcWaiter?.resolve(null);
      return; // not connected: the next welcome subscribes again
    }
    const reply = await answer;
    log('reply', reply ? reply.type + (reply.name ? `:${reply.name}` : '') : 'none');
    if (gen !== pcGen || !reply) return;
    if (reply.type === 'rtc_answer') {
      try {
        await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
      } catch (e) {
        st.mediaError = { name: 'webrtc', message: `The video answer was not accepted: ${e.message}` };
        render();
        scheduleResubscribe(5000);
      }
      return;
    }
    st.mediaError = reply;
    lockstep.mediaError = reply;
    render();
    if (reply.name === 'media_unavailable') {
      // The stream is not there (yet): a `media {live:true}` broadcast subscribes again.
      st.media.live = false;
      render();
    } else {
      scheduleResubscribe(reply.retry_after_ms || 5000);
    }
  }

  function scheduleResubscribe(ms) {
    clearTimeout(retryTimer);
    const gen = pcGen;
    retryTimer = setTimeout(() => {
      if (gen === pcGen && st.media.live && !st.final) subscribe();
    }, ms);
  }

  // Stall watchdog: checks once a second that the connected subscription still decodes.
  const stall = { pc: null, frames: -1, since: 0 };
  setInterval(async () => {
    const pc = lockstep.pc;
    if (!pc || st.final || !st.media.live || pc.connectionState !== 'connected' || document.hidden) {
      stall.pc = null;
      return;
    }
    let frames = 0;
    try {
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded || 0;
      });
    } catch {
      return;
    }
    const now = performance.now();
    if (stall.pc !== pc || frames !== stall.frames) {
      Object.assign(stall, { pc, frames, since: now });
    } else if (now - stall.since >= STALL_MS && pc === lockstep.pc) {
      log('stall', frames);
      lockstep.stallResubscribes += 1;
      stall.pc = null;
      subscribe();
    }
  }, 1000);

  function onMedia(media) {
    log('media', media);
    const wasLive = st.media.live;
    st.media = { live: !!media.live, playout_delay_ms: Number(media.playout_delay_ms) || 0 };
    lockstep.media = st.media;
    if (!st.media.live) {
      close();
    } else if (!wasLive || !lockstep.pc) {
      subscribe();
    } else {
      applyPlayoutDelay(lockstep.pc);
    }
    render();
  }

  function onAnswer(msg) {
    rtcWaiter?.resolve(msg);
  }

  function onError(msg) {
    if (!rtcWaiter) return false;
    if (msg.id !== rtcWaiter.id && !(msg.id === undefined && /media|subscriber|rtc/.test(msg.name))) return false;
    rtcWaiter.resolve(msg);
    return true;
  }

  ui.video.addEventListener('playing', () => {
    st.playing = true;
    st.mediaError = null;
    render();
  });
  ui.video.addEventListener('volumechange', render);

  ui.unmute.addEventListener('click', () => {
    ui.video.muted = false;
    ui.video.play().catch(() => {});
    render();
  });

  ui.layer.addEventListener('change', async () => {
    layer = ui.layer.value;
    if (!lockstep.pc) return; // the next offer carries the choice
    try {
      const reply = await channel.request({ type: 'rtc_layer', layer });
      if (reply.type === 'error') lockstep.errors.push(reply);
    } catch {
      /* disconnected: the next offer carries the choice */
    }
  });

  // Frame log: one entry per presented video frame, for measuring how closely viewers'
  // pictures line up (same rtpTimestamp → compare serverTime across viewers).
  if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
    const onFrame = (_now, md) => {
      const presentedAt = performance.timeOrigin + md.presentationTime;
      lockstep.frames.push({
        rtpTimestamp: md.rtpTimestamp,
        presentedAt,
        expectedDisplayTime: performance.timeOrigin + md.expectedDisplayTime,
        serverTime: presentedAt + channel.clockOffsetMs(),
        width: md.width,
        height: md.height,
      });
      if (lockstep.frames.length > MAX_FRAMES) lockstep.frames.splice(0, lockstep.frames.length - MAX_FRAMES);
      ui.video.requestVideoFrameCallback(onFrame);
    };
    ui.video.requestVideoFrameCallback(onFrame);
  }

  return { onMedia, onAnswer, onError, close };
}
