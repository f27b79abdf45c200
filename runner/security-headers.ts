// The response headers every page of the browser app (web/dist) is served
// with, in one place: the edge adds them to the web app's route (envoy/edge.ts
// generates them into edge.yaml from this map) and `make run`'s web app
// (runner/web-app.ts) can send the same values, so a browser sees one policy
// whichever way the app is served.
//
// What the built app needs, and so what the policy allows (checked against
// `vite build`'s output): one module script and one stylesheet from /assets/
// (same origin, no inline script or <style>), a console chunk loaded with
// import(), Connect calls to location.origin (fetch), the favicon as a data:
// URL (index.html: <link rel="icon" href="data:,">), and style attributes set
// from script (the console's trace waterfall positions its bars with
// style="left:..;width:..;--svc:.."). Nothing else: no eval, no frames, no
// plugins, no form posts elsewhere, no other origin. Changing what the app
// loads (a font, a CDN, an inline script) means changing this map.
//
// Values are plain ASCII with no "%" (Envoy reads header values as format strings).

/** Content-Security-Policy of the browser app, one directive per entry. */
export const CONTENT_SECURITY_POLICY: readonly string[] = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  // Style attributes only (never <style> elements): the console's waterfall.
  "style-src-attr 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  // No page may frame the shop (clickjacking); X-Frame-Options says the same to older browsers.
  "frame-ancestors 'none'",
];

/** Header name (lower case) to value: what every response of the browser app carries. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-security-policy": CONTENT_SECURITY_POLICY.join("; "),
  // The shop links nowhere that needs to know where a visitor came from.
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  // A window the shop opens, or that opens the shop, gets no handle on the other.
  "cross-origin-opener-policy": "same-origin",
});
