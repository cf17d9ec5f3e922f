// Porch's pages: local times, the ring banner (server-sent events), live timeline rows.
"use strict";

const porch = (window.porch = { rings: [], events: null });

function localTimes(root) {
  for (const el of root.querySelectorAll("time[data-ts]")) {
    const ts = Number(el.dataset.ts);
    if (ts) el.textContent = new Date(ts * 1000).toLocaleString();
  }
}

function chime() {
  // Ding-dong with WebAudio: no sound file, nothing fetched. Browsers may keep audio muted
  // until the page has been touched once; the banner shows regardless.
  try {
    const audio = new AudioContext();
    [[659, 0], [523, 0.35]].forEach(([freq, at]) => {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.2, audio.currentTime + at);
      gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + at + 0.6);
      osc.connect(gain).connect(audio.destination);
      osc.start(audio.currentTime + at);
      osc.stop(audio.currentTime + at + 0.6);
    });
  } catch (e) { /* no audio here */ }
}

function showRing(ring) {
  const banner = document.getElementById("ring-banner");
  banner.dataset.event = ring.event_id;
  document.getElementById("ring-where").textContent =
    `${ring.name || ring.device_id}, ${new Date(ring.ts * 1000).toLocaleTimeString()}`;
  document.getElementById("ring-live").href = `/live/${ring.device_id}`;
  const img = document.getElementById("ring-snapshot");
  img.hidden = true;
  if (ring.snapshot) showSnapshot(ring.event_id);
  banner.hidden = false;
  porch.rings.push({ event_id: ring.event_id, shown: Date.now(), ts: ring.ts });
  chime();
}

// A timeline row by its event's id; a person's row also answers to its motion's id
// (the motion's clip is the person's).
function row(eventId) {
  return document.querySelector(
    `#timeline [data-event="${eventId}"], #timeline [data-motion="${eventId}"]`);
}

function setRowImage(eventId, src, href) {
  const li = row(eventId);
  if (!li) return;
  const person = li.classList.contains("person");
  if (person && li.querySelector("img") && !href) {  // a better picture of who is there
    li.querySelector("img").src = `${src}?${Date.now()}`;
    return;
  }
  const img = document.createElement("img");
  img.src = src;
  img.alt = "The porch";
  const old = li.querySelector("img, .noimage");
  if (href) {
    const link = document.createElement("a");
    link.href = href;
    link.append(img);
    old.replaceWith(link);
    if (person && old.tagName === "IMG") link.replaceChildren(old);  // keep their picture
    const note = li.querySelector(".muted");
    const watch = document.createElement("a");
    watch.className = "watch";
    watch.href = href;
    watch.textContent = "Watch the clip";
    note ? note.replaceWith(watch) : li.querySelector("div").append(watch);
  } else if (old && old.classList.contains("noimage")) {
    old.replaceWith(img);
  } else if (old?.getAttribute("src")?.startsWith(src)) {
    old.src = `${src}?${Date.now()}`;  // a better picture of the same event
  }
}

function showSnapshot(eventId) {
  setRowImage(eventId, `/events/${eventId}/snapshot.jpg`);
  const banner = document.getElementById("ring-banner");
  if (banner.dataset.event !== eventId) return;
  const img = document.getElementById("ring-snapshot");
  img.src = `/events/${eventId}/snapshot.jpg?${Date.now()}`;  // a better one may follow
  img.hidden = false;
}

const LABELS = { ring: "Ring", person: "Someone", motion: "Motion",
                 left: "Parcel left", taken: "Something taken" };

// Someone seen during a motion whose row is shown: that row becomes theirs.
function showPerson(event) {
  const li = row(event.motion_event_id);
  if (!li) {
    addRow("person", event);
  } else {
    li.className = "event person";
    li.dataset.event = event.event_id;
    li.dataset.motion = event.motion_event_id;
    li.querySelector("strong").textContent = LABELS.person;
  }
  setRowImage(event.event_id, `/events/${event.event_id}/snapshot.jpg`);
}

function addRow(kind, event) {
  const list = document.getElementById("timeline");
  if (!list || row(event.event_id)) return;
  list.querySelector(".empty")?.remove();
  const li = document.createElement("li");
  li.className = `event ${kind}`;
  li.dataset.event = event.event_id;
  if (event.motion_event_id) li.dataset.motion = event.motion_event_id;
  const mark = document.createElement("span");
  mark.className = "noimage";
  mark.textContent = kind;
  const text = document.createElement("div");
  const title = document.createElement("strong");
  title.textContent = LABELS[kind === "parcel" ? event.action : kind];
  text.append(title, ` at ${event.device_id} `);
  const time = document.createElement("time");
  time.dataset.ts = event.ts;
  const note = document.createElement("span");
  note.className = "muted";
  note.textContent = "clip on its way";
  text.append(time, note);
  li.append(mark, text);
  list.prepend(li);
  localTimes(li);
}

function listen() {
  const events = (porch.events = new EventSource("/events/stream"));
  events.addEventListener("ring", (e) => {
    const ring = JSON.parse(e.data);
    showRing(ring);
    addRow("ring", ring);
  });
  events.addEventListener("snapshot", (e) => showSnapshot(JSON.parse(e.data).event_id));
  events.addEventListener("motion", (e) => addRow("motion", JSON.parse(e.data)));
  events.addEventListener("person", (e) => showPerson(JSON.parse(e.data)));
  events.addEventListener("parcel", (e) => {
    const parcel = JSON.parse(e.data);
    addRow("parcel", parcel);
    setRowImage(parcel.event_id, `/events/${parcel.event_id}/snapshot.jpg`);
  });
  events.addEventListener("clip", (e) => {
    const { clip_id, event_ids } = JSON.parse(e.data);
    for (const id of event_ids) {
      setRowImage(id, `/clips/${clip_id}/thumbnail.jpg`, `/clips/${clip_id}`);
    }
  });
  events.addEventListener("request", (e) => {
    const { request_id, organisation } = JSON.parse(e.data);
    const banner = document.getElementById("request-banner");
    if (!banner) return;
    document.getElementById("request-from").textContent = organisation;
    document.getElementById("request-open").href = `/requests/${request_id}`;
    banner.hidden = false;
  });
  events.addEventListener("status", (e) => {
    const { device_id, state } = JSON.parse(e.data);
    const cell = document.querySelector(`tr[data-device="${device_id}"] .state`);
    if (cell) { cell.textContent = state; cell.className = `state ${state}`; }
  });
}

// Ask `url` for a status every second until `more(state)` says no (every 3 s after an
// error), handing each status to `show`.
function follow(url, show, more) {
  const poll = async () => {
    let status;
    try {
      const reply = await fetch(url, { headers: { accept: "application/json" } });
      if (!reply.ok) return setTimeout(poll, 3000);
      status = await reply.json();
    } catch (e) { return setTimeout(poll, 3000); }
    show(status);
    if (more(status.state)) setTimeout(poll, 1000);
  };
  poll();
}

// A request's bundle is built in the background after the approval: show how far it got,
// and the download once it is ready.
function followBundle(box) {
  const show = (id, on) => { document.getElementById(id).hidden = !on; };
  if (box.dataset.state === "ready" || box.dataset.state === "failed") return;
  follow(`/api/requests/${box.dataset.request}/bundle`, (status) => {
    box.dataset.state = status.state;
    document.getElementById("bundle-progress").value = status.percent;
    document.getElementById("bundle-percent").textContent = `${status.percent} %`;
    document.getElementById("bundle-error").textContent = status.error;
    show("bundle-ready", status.state === "ready");
    show("bundle-building", status.state === "queued" || status.state === "building");
    show("bundle-failed", status.state === "failed");
  }, (state) => state === "queued" || state === "building");
}

// An approved area request's bundle travels to the agency's drop box: show how far.
function followDelivery(box) {
  const over = (state) => ["delivered", "failed", "withdrawn"].includes(state);
  if (over(box.dataset.state)) return;
  follow(`/api/requests/${box.dataset.request}/delivery`, (status) => {
    box.dataset.state = status.state;
    document.getElementById("delivery-progress").value = status.percent;
    document.getElementById("delivery-state").textContent =
      status.state + (status.state === "sending" ? ` (${status.percent} %)` : "");
    document.getElementById("delivery-error").textContent = status.error;
  }, (state) => !over(state));
}

// Copy buttons: the text of the element their data-copy names (an invite link, a fingerprint).
function copyButtons(root) {
  for (const button of root.querySelectorAll("button.copy[data-copy]")) {
    button.addEventListener("click", async () => {
      const text = document.querySelector(button.dataset.copy)?.textContent.trim() ?? "";
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch (e) {
        button.textContent = "Select it and copy";  // no clipboard over plain HTTP, say
      }
    });
  }
}

// Notifications with the page closed: register the service worker, subscribe with the
// hub's VAPID key, and hand the subscription to the hub.
function b64ToBytes(text) {
  const padded = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

async function turnOnPush(state) {
  try {
    if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
      state.textContent = "This browser cannot receive notifications (or the page is not on HTTPS).";
      return;
    }
    const info = await (await fetch("/api/push")).json();
    if (!info.enabled) { state.textContent = "Notifications are turned off on this hub."; return; }
    if (await Notification.requestPermission() !== "granted") {
      state.textContent = "Notifications are not allowed for this site in the browser.";
      return;
    }
    const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    const subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true, applicationServerKey: b64ToBytes(info.public_key),
    });
    const reply = await fetch("/api/push/subscriptions", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": document.body.dataset.csrf },
      body: JSON.stringify(subscription.toJSON()),
    });
    state.textContent = reply.ok ? "On: this device will ring." : (await reply.json()).detail;
  } catch (e) {
    state.textContent = `Could not turn them on: ${e.message}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  copyButtons(document);
  document.getElementById("push-on")?.addEventListener("click",
    () => turnOnPush(document.getElementById("push-state")));
  const bundle = document.getElementById("bundle");
  if (bundle) followBundle(bundle);
  const delivery = document.getElementById("delivery");
  if (delivery) followDelivery(delivery);
  document.getElementById("ring-dismiss")?.addEventListener("click", () => {
    document.getElementById("ring-banner").hidden = true;
  });
  document.getElementById("demo-press")?.addEventListener("click", () => {
    fetch("/demo/press", { method: "POST", headers: { "X-CSRF-Token": document.body.dataset.csrf } });
  });
  if (document.body.dataset.live === "1") listen();
});
