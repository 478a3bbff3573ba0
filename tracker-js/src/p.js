// Pulse tracker, served at /p.js. Every byte is paid for on every page of every site, so
// the code is terse on purpose; the README ("Tracker payload") documents what it sends.
// build.mjs replaces each PULSE_* flag with true or false, and esbuild drops the code of
// the features a build leaves out.
((guard) =>
  guard(() => {
    const d = document;
    const nav = navigator;
    const loc = location;
    const script = d.currentScript;
    const data = script.dataset;
    // Without data-hash the fragment is not part of the page, so #section links are no views.
    const page = () => (PULSE_SPA && "hash" in data ? loc.href : loc.href.split("#")[0]);
    const api = data.api || new URL("/api/event", script.src);
    // None of these change while the page lives; the opt-out flag is read on every send, so
    // setting it takes effect at once. file: pages have an empty hostname.
    const off =
      nav.doNotTrack == 1 ||
      nav.globalPrivacyControl ||
      (!("debug" in data) && (nav.webdriver || /^(localhost|127\.|$)/.test(loc.hostname)));
    let store;
    let current;
    let since;
    try {
      store = localStorage;
    } catch (e) {} // the browser blocks storage: no flag to read, no id to keep

    // A string body goes as text/plain, a CORS-simple request (no preflight). keepalive lets
    // it outlive the page, so a click that navigates away is never held back (keepalive: 1 is
    // true to fetch, one byte shorter). A 429 or 5xx (the collector could not store it, or a
    // load balancer lost it) is sent once more 10 s later, as a beacon, which survives the page
    // being closed by then; when fetch itself fails, the beacon goes at once. `x` is the
    // event's own random id, so a copy that did arrive the first time is counted once.
    // The visitor id is made only once sending is allowed, so an opted-out browser keeps none;
    // without storage the collector's daily hash stands in (void 0 leaves the key out).
    // body and beacon are parameters only because that is shorter than declaring them.
    const send = (n, extra, u = page(), body, beacon) =>
      off ||
      store?.pulse_ignore == "true" ||
      fetch(api, {
        method: "POST",
        body: (body = JSON.stringify({
          s: data.site,
          n,
          u,
          r: d.referrer,
          w: innerWidth,
          i: PULSE_VISITOR && data.visitor == "cookie" && store ? (store.pulse_id ||= Math.random() + "") : void 0,
          x: Math.random(),
          ...extra,
        })),
        keepalive: 1,
      }).then(
        (r) => r.status > 428 && setTimeout(beacon, 1e4),
        (beacon = guard(() => nav.sendBeacon(api, body))),
      );

    // Engagement is visible time, sent per visible stretch: when the page is hidden (which
    // includes leaving it) and when a SPA navigation ends the page it belonged to. The
    // collector refuses a stretch over a day, which is a screen left on, not a reader.
    const engaged =
      PULSE_ENGAGEMENT &&
      guard(() => {
        if (since && current) send("engagement", { e: Date.now() - since }, current);
        since = d.hidden ? 0 : Date.now();
      });
    const pageview = guard(() => {
      const u = page();
      if (u != current) {
        if (PULSE_ENGAGEMENT) engaged();
        send("pageview", 0, (current = u));
      }
    });
    if (PULSE_ENGAGEMENT) addEventListener("visibilitychange", engaged);

    if (PULSE_SPA) {
      for (const method of ["pushState", "replaceState"]) {
        const original = history[method];
        history[method] = function (...a) {
          original.apply(this, a);
          pageview();
        };
      }
      // Fragment navigations fire popstate too, which is what hash routing relies on.
      addEventListener("popstate", pageview);
    }
    // A page restored from the back/forward cache is a new view of the same URL.
    addEventListener("pageshow", (e) => e.persisted && ((current = 0), pageview()));

    if (PULSE_TAGGED || PULSE_OUTBOUND || PULSE_DOWNLOADS) {
      const downloads = PULSE_DOWNLOADS && (data.downloads || "pdf,zip,dmg,exe,csv,xlsx,docx,mp3,mp4").split(",");
      // Listening on window lets the page's own handlers run first, so defaultPrevented is
      // final. Middle clicks arrive as auxclick; right clicks (button 2) follow nothing.
      // Nothing here calls preventDefault: modifier clicks keep opening tabs and windows.
      const click = guard((e) => {
        if (e.button > 1) return;
        const target = e.target;
        if (PULSE_TAGGED) {
          const tagged = target.closest("[data-pulse-event]");
          const p = {};
          if (tagged) {
            for (const a of tagged.attributes) a.name.replace(/^data-pulse-prop-(.+)/, (_, k) => (p[k] = a.value));
            send(tagged.dataset.pulseEvent, { p });
          }
        }
        // A link whose click the page prevented was not followed; mailto: and tel: have no host.
        const link = !e.defaultPrevented && target.closest("a[href]");
        const name =
          link?.host &&
          (PULSE_DOWNLOADS && downloads.includes(link.pathname.split(".").pop())
            ? "download"
            : PULSE_OUTBOUND && link.host != loc.host && "outbound");
        // Property values are capped at 256 characters by the collector.
        if (name) send(name, { p: { url: link.href.slice(0, 256) } });
      });
      addEventListener("click", click);
      addEventListener("auxclick", click);
    }

    if (d.prerendering) d.addEventListener("prerenderingchange", pageview);
    else pageview();

    // Calls queued by the snippet's stub before this script ran, in their order.
    if (PULSE_EVENTS) {
      const queued = window.pulse?.q;
      window.pulse = guard((name, options) => send(name, { p: options?.props }));
      queued?.map((args) => pulse(...args));
    }
  })())(
  // Every way in from the page (pulse(), listeners, the history hooks) goes through guard,
  // so neither a bug here nor a hostile page can surface as an error in the host page.
  (f) =>
    (...a) => {
      try {
        f(...a);
      } catch (e) {}
    },
);
