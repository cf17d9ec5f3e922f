// Porch's service worker: shows a ring (or motion) pushed by the hub while no page is open,
// and opens the event on the hub when the notification is tapped. The message carries no
// picture; the event's page fetches the snapshot from the hub itself.
"use strict";

self.addEventListener("push", (event) => {
  let message = {};
  try { message = event.data ? event.data.json() : {}; } catch (e) { message = {}; }
  const title = message.title || "Porch";
  event.waitUntil(self.registration.showNotification(title, {
    body: message.body || "Someone is at the door",
    tag: message.event_id || "porch",
    icon: "/static/icon-192.png",
    data: { url: message.url || "/" },
    requireInteraction: message.kind === "ring",
  }));
});

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

// Only a path on this hub is ever opened: in a window of the hub that is already open,
// else in a new one.
async function open(url) {
  const target = new URL(url || "/", self.location.origin);
  if (target.origin !== self.location.origin) return;
  const path = target.pathname + target.search;
  const windows = await self.clients.matchAll({ type: "window" });
  for (const client of windows) {
    if (new URL(client.url).origin !== self.location.origin) continue;
    try { await client.focus(); } catch (e) { /* focusing needs a tap; navigating does not */ }
    await client.navigate(path);
    return;
  }
  await self.clients.openWindow(path);
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(open(event.notification.data && event.notification.data.url));
});

// A page may ask the worker to open an event as a tap would (used by the tests).
self.addEventListener("message", (event) => {
  if (event.data && event.data.type === "open") event.waitUntil(open(event.data.url));
});
