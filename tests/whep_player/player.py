"""A WHEP player built on aiortc (a WebRTC stack that is not webrtc-rs).

    python player.py BASE_URL ROOM SECONDS [--remb-cap BPS] [--token TOKEN]

Posts a receive-only offer to BASE_URL/whep/ROOM with aiortc's defaults (its codecs,
its feedback: REMB, receiver reports, NACK, PLI), decodes the video for SECONDS and
prints one JSON line: the decoded frame sizes over time (a point each time the size
changes, ms since the first frame), the number of frames decoded, the last size and
how long it was decoded at that size. Exits non-zero when no frame was decoded.

--remb-cap plays a viewer on a slow link: the REMBs the player sends never say more
than BPS (aiortc's own estimate, capped), as a receiver behind such a link would say.
"""

import argparse
import asyncio
import json
import sys
import time
import urllib.request

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc import rate


def cap_remb(cap_bps):
    """Caps every REMB aiortc sends at cap_bps."""
    estimate = rate.RemoteBitrateEstimator.add

    def capped(self, *args, **kwargs):
        remb = estimate(self, *args, **kwargs)
        if remb is None:
            return None
        bitrate, ssrcs = remb
        return min(bitrate, cap_bps), ssrcs

    rate.RemoteBitrateEstimator.add = capped


def post_offer(url, sdp, token):
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=sdp.encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode(), response.headers.get("Location")


def delete(url, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers, method="DELETE")
    try:
        urllib.request.urlopen(request, timeout=5).close()
    except OSError:
        pass


async def play(base, room, seconds, token):
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    sizes, frames, first = [], 0, None
    done = asyncio.Event()

    async def consume(track):
        nonlocal frames, first
        while True:
            try:
                frame = await track.recv()
            except Exception:  # the track ended
                return
            now = time.monotonic()
            if first is None:
                first = now
            frames += 1
            size = (frame.width, frame.height)
            if not sizes or tuple(sizes[-1][1:]) != size:
                sizes.append([round((now - first) * 1000), *size])

    @pc.on("track")
    def on_track(track):
        if track.kind == "video":
            asyncio.ensure_future(consume(track))

    await pc.setLocalDescription(await pc.createOffer())
    answer, location = await asyncio.to_thread(
        post_offer, f"{base}/whep/{room}", pc.localDescription.sdp, token
    )
    started = time.monotonic()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    try:
        await asyncio.wait_for(done.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass
    ended = time.monotonic()
    await pc.close()
    if location:
        await asyncio.to_thread(delete, f"{base}{location}", token)
    last_since = None
    if sizes and first is not None:
        last_since = round((ended - first) * 1000) - sizes[-1][0]
    return {
        "frames": frames,
        "first_frame_ms": None if first is None else round((first - started) * 1000),
        "sizes": sizes,
        "last_size": sizes[-1][1:] if sizes else None,
        "ms_at_last_size": last_since,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("room")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--remb-cap", type=int)
    parser.add_argument("--token")
    args = parser.parse_args()
    if args.remb_cap:
        cap_remb(args.remb_cap)
    result = asyncio.run(play(args.base.rstrip("/"), args.room, args.seconds, args.token))
    print(json.dumps(result))
    sys.exit(0 if result["frames"] > 0 else 1)


if __name__ == "__main__":
    main()
