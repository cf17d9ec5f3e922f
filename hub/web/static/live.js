// Live view: a WebRTC peer connection to the hub, which relays the doorbell's own H.264.
// Trickle ICE (the offer goes out at once, candidates follow) and a watchdog that keeps the
// page honest: "live" only while frames are decoded, "offline" while the doorbell is away.
// Talk (doorbells with a speaker): the same connection carries an audio sender that holds
// the microphone only while the Talk button is on. The view is a lease the page renews
// while its session holds; signed out (here or from elsewhere), it ends and stays ended.
"use strict";

const live = (window.porchLive = {
  pc: null, session: null, clicked: performance.now(), firstFrame: null, state: "connecting",
  online: false, lastFrames: 0, lastFrameAt: 0, starting: false, retryAt: 0,
  talk: null, mic: null, lease: null, ended: false,
});
const video = document.getElementById("live");
const device = video.dataset.device;
const STALL_MS = 2000;
const RESTART_MS = 8000;

async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    keepalive: method === "DELETE",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": document.body.dataset.csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    const detail = await response.json().catch(() => ({}));
    if (response.status === 401) end("you were signed out; sign in again to watch");
    const error = new Error(detail.detail || `${response.status}`);
    error.status = response.status;
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

function stop() {
  stopTalking();
  clearInterval(live.lease);
  if (live.session) api("DELETE", `/api/live/${live.session}`).catch(() => {});
  if (live.pc) live.pc.close();
  live.pc = live.session = live.lease = null;
}

function end(why) {
  // The session ended: nothing more is asked of the hub, the picture goes.
  live.ended = true;
  clearInterval(live.lease);
  stopTalking();
  if (live.pc) live.pc.close();
  live.pc = live.session = live.lease = null;
  video.srcObject = null;
  show("ended", why);
}

function renew(session) {
  api("POST", `/api/live/${session}/lease`).catch((err) => {
    if (live.session === session && [403, 404].includes(err.status)) end("this view ended");
  });
}

async function start() {
  if (live.starting) return;
  live.starting = true;
  stop();
  const pc = (live.pc = new RTCPeerConnection({ iceServers: JSON.parse(video.dataset.ice) }));
  const pending = [];
  let session = null;
  const send = (c) => api("POST", `/api/live/${session}/candidates`, c).catch(() => {});
  pc.addTransceiver("video", { direction: "recvonly" });
  live.talk = video.dataset.talk ? pc.addTransceiver("audio", { direction: "sendonly" }) : null;
  pc.onicecandidate = (e) => {
    const c = e.candidate ? e.candidate.toJSON() : { candidate: null };
    session ? send(c) : pending.push(c);
  };
  pc.ontrack = (e) => {
    video.srcObject = new MediaStream([e.track]);
    video.requestVideoFrameCallback?.((now) => { live.firstFrameAt = performance.timeOrigin + now; });
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await api("POST", `/api/devices/${device}/live`,
                             { type: "offer", sdp: pc.localDescription.sdp });
    session = live.session = answer.session;
    live.lease = setInterval(() => renew(session), (answer.lease_s * 1000) / 3);
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    pending.splice(0).forEach(send);
    viewers();  // the owner sees themself in the list at once
  } catch (err) {
    if (live.ended) return;
    if (live.pc === pc) stop();
    live.retryAt = performance.now() + 2000;
    show(live.online ? "connecting" : "offline", err.message);
  } finally {
    live.starting = false;
  }
}

function show(state, why) {
  live.state = state;
  const badge = document.getElementById("live-state");
  badge.textContent = state;
  badge.className = `state ${state === "live" ? "online" : state === "offline" ? "offline" : ""}`;
  badge.title = why || "";
  const note = document.getElementById("live-note");
  note.hidden = state !== "ended";
  note.textContent = state === "ended" ? `Live view ended: ${why}.` : "";
}

function frames() {
  const quality = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
  return quality ? quality.totalVideoFrames - quality.droppedVideoFrames : 0;
}

function watchdog() {
  if (live.ended) return;
  const now = performance.now();
  const decoded = frames();
  if (decoded > live.lastFrames) {
    live.lastFrameAt = now;
    if (live.firstFrame === null && video.videoWidth > 0) live.firstFrame = now - live.clicked;
  }
  live.lastFrames = decoded;
  const playing = now - live.lastFrameAt < STALL_MS;
  if (!live.online) show("offline");
  else show(playing ? "live" : "connecting");
  const broken = !live.pc || ["failed", "closed"].includes(live.pc.connectionState);
  const stuck = live.pc && !playing && now - Math.max(live.lastFrameAt, live.retryAt) > RESTART_MS;
  if (live.online && (broken || stuck) && now >= live.retryAt) {
    live.retryAt = now;
    start();
  }
}

async function startTalking() {
  const button = document.getElementById("talk");
  const state = document.getElementById("talk-state");
  try {
    if (!live.talk) throw new Error("not connected yet");
    live.mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    await live.talk.sender.replaceTrack(live.mic.getAudioTracks()[0]);
    button.setAttribute("aria-pressed", "true");
    button.textContent = "Stop talking";
    state.textContent = "Talking: the doorbell plays what you say.";
  } catch (err) {
    stopTalking();
    state.textContent = `Cannot talk: ${err.message}`;
  }
}

function stopTalking() {
  if (live.talk) live.talk.sender.replaceTrack(null).catch(() => {});
  if (live.mic) live.mic.getTracks().forEach((t) => t.stop());
  live.mic = null;
  const button = document.getElementById("talk");
  if (!button) return;
  button.setAttribute("aria-pressed", "false");
  button.textContent = "Talk";
  document.getElementById("talk-state").textContent =
    "Your voice plays on the doorbell's speaker while this is on.";
}

async function viewers() {
  if (live.ended) return;
  try {
    const state = await api("GET", `/api/devices/${device}/live`);
    live.online = state.online;
    const list = document.getElementById("live-viewers");
    if (list && state.viewers) list.textContent = `Watching now: ${state.viewers.join(", ")}`;
  } catch (err) { /* the hub is restarting: try again */ }
}

document.addEventListener("DOMContentLoaded", () => {
  live.online = document.getElementById("live-state").classList.contains("online");
  window.porch.events?.addEventListener("status", (e) => {
    const { device_id, state } = JSON.parse(e.data);
    if (device_id === device) live.online = state === "online";
    watchdog();
  });
  window.addEventListener("pagehide", stop);
  document.getElementById("talk")?.addEventListener("click", () => {
    live.mic ? stopTalking() : startTalking();
  });
  if (live.online) start();
  setInterval(watchdog, 250);
  setInterval(viewers, 2000);
  viewers();
});
