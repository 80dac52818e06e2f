/**
 * Network failures phrased for an operator: Deno's fetch throws `TypeError("fetch failed")`
 * and keeps the reason (hyper's and rustls' words) in `cause`; {@link networkFailure} turns
 * that into "connection refused by HOST:PORT", "no such host", "TLS failure", "timeout".
 */

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** "host:port" of a URL, with the scheme's default port spelled out. */
export function hostPort(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url;
  }
  return `${u.hostname}:${u.port || (u.protocol === "https:" ? "443" : "80")}`;
}

/**
 * What a failed `fetch` means, for an operator: connection refused, no such host, a TLS
 * failure, a timeout, naming host:port. Deno's fetch throws `TypeError("fetch failed")` with
 * the real reason (hyper's and rustls' words) in `cause`; this reads both.
 *
 * @example
 * ```ts
 * networkFailure(new TypeError("fetch failed", { cause: new Error("… tcp connect error: Connection refused (os error 111)") }), "http://127.0.0.1:5000/v2/");
 * // "connection refused by 127.0.0.1:5000"
 * ```
 */
export function networkFailure(e: unknown, url: string): string {
  const where = hostPort(url);
  const texts: string[] = [];
  for (let x: unknown = e, i = 0; x !== undefined && x !== null && i < 5; i++) {
    texts.push(message(x));
    x = x instanceof Error ? x.cause : undefined;
  }
  const all = texts.join(": ");
  const detail = (re: RegExp) => re.exec(all)?.[1]?.trim();
  if (e instanceof DOMException && e.name === "TimeoutError" || /timed? ?out/i.test(all)) {
    return `timeout talking to ${where}${/timed? ?out/i.test(all) ? ` (${texts.at(-1)})` : ""}`;
  }
  if (/connection refused/i.test(all)) return `connection refused by ${where}`;
  if (
    /dns error|failed to lookup address|name or service not known|no address associated/i.test(all)
  ) {
    const why = detail(/failed to lookup address information: (.*)$/) ?? texts.at(-1);
    return `no such host: cannot resolve ${hostPort(url).replace(/:\d+$/, "")} (${why})`;
  }
  if (/certificate|tls|handshake|corrupt message|InvalidContentType|alert/i.test(all)) {
    const why = detail(/client error \(Connect\): (.*)$/) ?? texts.at(-1);
    return `TLS failure talking to ${where}: ${why}${
      /corrupt message|InvalidContentType/.test(all)
        ? " (does it speak plain HTTP? then use --plain-http or hosts.toml)"
        : ""
    }`;
  }
  if (/connection reset/i.test(all)) return `connection reset by ${where}`;
  if (/network is unreachable|no route to host/i.test(all)) {
    return `${where} is unreachable (${texts.at(-1)})`;
  }
  // Anything else: the innermost words, which say more than "fetch failed".
  return `${where}: ${texts.length > 1 ? texts.slice(1).join(": ") : all}`;
}
