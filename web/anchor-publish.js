// The anchor console's outgoing media: the camera (and microphone) with its preview, and
// the WHIP session that publishes it to the server in three simulcast layers
// (POST /whip/{room} with the SDP offer, DELETE on the session URL to stop).
//
// It owns the preview `<video>`, its overlay message and the stream status line, and keeps
// `lockstep.pc` and `lockstep.whip` up to date.

import { describeError, httpError, iceGatheringComplete } from './common.js';

const WHIP_LABEL = {
  idle: 'Not streaming', starting: 'Going live…', connecting: 'Connecting the stream…',
  connected: 'Streaming', failed: 'Stream failed', stopped: 'Stream stopped',
};
/** Simulcast layers the camera is published in; the server forwards one per viewer. */
const SIMULCAST = [
  { rid: 'low', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'mid', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'high', maxBitrate: 1500000 },
];

/**
 * Sets up the camera and WHIP publishing of the anchor console.
 *
 * - `room`, `token`: the room id and the anchor token (for the WHIP requests).
 * - `lockstep`: the test hooks. Written: `pc` (the publishing peer connection),
 *   `whip` (`{status, location, error}`), `errors`.
 * - `ui`: `{preview, previewOverlay, previewMessage, whipStatus}`.
 * - `onStatus()`: called after every change of `lockstep.whip.status`.
 * - `showPageError(text)`: shows (or, with '', clears) the page-level error line.
 *
 * Returns `{startCamera, stopCamera, publish, stopPublishing, setStatus}`; `setStatus`
 * lets the caller report the steps before publishing (`starting`, or `failed` with an
 * error).
 */
export function createPublisher({ room, token, lockstep, ui, onStatus, showPageError }) {
  let camera = null;

  function setStatus(status, error = null) {
    lockstep.whip.status = status;
    lockstep.whip.error = error;
    ui.whipStatus.dataset.state = status;
    ui.whipStatus.textContent = error ? `${WHIP_LABEL[status]}: ${error.message || describeError(error)}` : WHIP_LABEL[status];
    onStatus();
  }

  /** Opens the camera (falling back to no video, or no audio) and shows it in the preview;
   * resolves with the stream, or `null` when there is none. */
  async function startCamera() {
    if (camera) return camera;
    if (!navigator.mediaDevices?.getUserMedia) {
      ui.previewMessage.textContent = 'This browser cannot use a camera here (a secure origin is needed).';
      return null;
    }
    const attempts = [
      { video: { width: 1280, height: 720 }, audio: true },
      { video: { width: 1280, height: 720 }, audio: false },
      { video: false, audio: true },
    ];
    let lastError = null;
    for (const constraints of attempts) {
      try {
        camera = await navigator.mediaDevices.getUserMedia(constraints);
        break;
      } catch (e) {
        lastError = e;
      }
    }
    if (!camera) {
      ui.previewOverlay.hidden = false;
      ui.previewMessage.textContent = `Camera unavailable: ${lastError?.message || 'permission denied'}`;
      return null;
    }
    ui.preview.srcObject = camera;
    ui.preview.play().catch(() => {});
    ui.previewOverlay.hidden = camera.getVideoTracks().length > 0;
    if (!camera.getVideoTracks().length) ui.previewMessage.textContent = 'Microphone only (no camera found)';
    return camera;
  }

  function stopCamera() {
    if (camera) for (const t of camera.getTracks()) t.stop();
    camera = null;
    ui.preview.srcObject = null;
  }

  /** Publishes the camera over WHIP; the outcome is in `lockstep.whip`. */
  async function publish() {
    const stream = await startCamera();
    if (!stream) {
      setStatus('failed', { name: 'no_camera', message: 'no camera or microphone available' });
      return;
    }
    setStatus('connecting');
    const pc = new RTCPeerConnection();
    lockstep.pc = pc;
    const [video] = stream.getVideoTracks();
    const [audio] = stream.getAudioTracks();
    if (video) {
      try {
        pc.addTransceiver(video, { direction: 'sendonly', streams: [stream], sendEncodings: SIMULCAST });
      } catch {
        pc.addTransceiver(video, { direction: 'sendonly', streams: [stream] });
      }
    }
    if (audio) pc.addTransceiver(audio, { direction: 'sendonly', streams: [stream] });
    pc.addEventListener('connectionstatechange', () => {
      if (lockstep.pc !== pc) return;
      if (pc.connectionState === 'connected') setStatus('connected');
      else if (pc.connectionState === 'failed') {
        setStatus('failed', { name: 'ice_failed', message: 'the media connection failed' });
        stopPublishing(false);
      }
    });
    let resp;
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringComplete(pc);
      resp = await fetch(`/whip/${encodeURIComponent(room)}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/sdp' },
        body: pc.localDescription.sdp,
      });
    } catch (e) {
      pc.close();
      lockstep.pc = null;
      setStatus('failed', { name: 'network', message: e.message });
      return;
    }
    if (lockstep.pc !== pc) return;
    if (resp.status !== 201) {
      const err = await httpError(resp);
      pc.close();
      lockstep.pc = null;
      setStatus('failed', err);
      showPageError(`The stream was refused (HTTP ${err.status} ${err.name}): ${err.message || describeError(err)}`);
      return;
    }
    const answer = await resp.text();
    const location = resp.headers.get('Location');
    lockstep.whip.location = location ? new URL(location, window.location.href).href : null;
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    } catch (e) {
      setStatus('failed', { name: 'bad_answer', message: e.message });
      stopPublishing(false);
      return;
    }
    showPageError('');
    if (pc.connectionState === 'connected') setStatus('connected');
  }

  /** Ends the WHIP session (DELETE on its URL) and closes the connection; resolves when
   * the DELETE is done. */
  function stopPublishing(markStopped = true, keepalive = false) {
    const pc = lockstep.pc;
    const location = lockstep.whip.location;
    lockstep.pc = null;
    lockstep.whip.location = null;
    if (pc) pc.close();
    let done = Promise.resolve();
    if (location) {
      done = fetch(location, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` }, keepalive })
        .then(async (resp) => {
          if (!resp.ok && resp.status !== 404) lockstep.errors.push(await httpError(resp));
          else await resp.arrayBuffer();
        })
        .catch((e) => lockstep.errors.push(e.message));
    }
    if (markStopped && pc) setStatus('stopped');
    return done;
  }

  window.addEventListener('pagehide', () => {
    if (lockstep.whip.location) stopPublishing(true, true);
  });

  return { startCamera, stopCamera, publish, stopPublishing, setStatus };
}
