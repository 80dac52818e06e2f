import { describe, expect, it } from "../testing/bdd.ts";
import { InvalidArgumentError } from "../errdefs/errors.ts";
import {
  Authorizer,
  basicAuthHeader,
  credentialsFromAuthConfig,
  credentialsFromConfig,
  parseChallenges,
  registryErrorText,
  requestCredentials,
  UnauthorizedError,
} from "./auth.ts";

describe("parseChallenges", () => {
  it("parses Bearer with realm, service and scope", () => {
    expect(
      parseChallenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",' +
          'scope="repository:library/busybox:pull"',
      ),
    ).toEqual([{
      scheme: "bearer",
      params: {
        realm: "https://auth.docker.io/token",
        service: "registry.docker.io",
        scope: "repository:library/busybox:pull",
      },
    }]);
  });

  it("keeps commas and escaped quotes inside quoted values; several challenges", () => {
    expect(
      parseChallenges(
        'Basic realm="a, \\"b\\"", Bearer realm="http://x/t", scope="repository:a:pull,push" ,' +
          " service=plain",
      ),
    ).toEqual([
      { scheme: "basic", params: { realm: 'a, "b"' } },
      {
        scheme: "bearer",
        params: { realm: "http://x/t", scope: "repository:a:pull,push", service: "plain" },
      },
    ]);
  });

  it("lower-cases scheme and parameter names, tolerates spacing and bare schemes", () => {
    expect(parseChallenges('BASIC  Realm = "r"')).toEqual([
      { scheme: "basic", params: { realm: "r" } },
    ]);
    expect(parseChallenges("Negotiate")).toEqual([{ scheme: "negotiate", params: {} }]);
    expect(parseChallenges("")).toEqual([]);
  });
});

describe("credentials", () => {
  it("basicAuthHeader encodes user:password (UTF-8)", () => {
    expect(basicAuthHeader("user", "pass")).toBe("Basic dXNlcjpwYXNz");
    expect(atob(basicAuthHeader("ü", "p:w").slice(6))).toBe("\u00c3\u00bc:p:w");
  });

  it("reads CRI AuthConfig in either field spelling", () => {
    expect(credentialsFromAuthConfig({ username: "u", password: "p" })).toEqual({
      username: "u",
      password: "p",
    });
    expect(credentialsFromAuthConfig({ auth: btoa("u:p:x") })).toEqual({
      username: "u",
      password: "p:x",
    });
    expect(credentialsFromAuthConfig({ identity_token: "it" })).toEqual({
      identityToken: "it",
      username: undefined,
    });
    expect(credentialsFromAuthConfig({ identityToken: "it", username: "u" })).toEqual({
      identityToken: "it",
      username: "u",
    });
    expect(credentialsFromAuthConfig({ registryToken: "rt" })).toEqual({ registryToken: "rt" });
    expect(credentialsFromAuthConfig({})).toBeUndefined();
    expect(credentialsFromAuthConfig(undefined)).toBeUndefined();
    expect(() => credentialsFromAuthConfig({ auth: btoa("nocolon") })).toThrow(
      InvalidArgumentError,
    );
    expect(() => credentialsFromAuthConfig({ auth: "!!!" })).toThrow(/not valid base64/);
  });

  it("config provider matches hosts, also written as URLs", async () => {
    const creds = credentialsFromConfig({
      "127.0.0.1:5000": { auth: { username: "a", password: "b" } },
      "https://ghcr.io/v2/": { auth: { auth: btoa("c:d") } },
      "quay.io": { auth: { identitytoken: "t" } },
    });
    expect(await creds("127.0.0.1:5000")).toEqual({ username: "a", password: "b" });
    expect(await creds("ghcr.io")).toEqual({ username: "c", password: "d" });
    expect(await creds("quay.io")).toEqual({ identityToken: "t", username: undefined });
    expect(await creds("docker.io")).toBeUndefined();
  });

  it("request credentials win, unless server_address names another host", async () => {
    const fallback = credentialsFromConfig({
      "m.io": { auth: { username: "cfg", password: "x" } },
    });
    const any = requestCredentials({ username: "req", password: "y" }, fallback);
    expect(await any("m.io")).toEqual({ username: "req", password: "y" });
    const scoped = requestCredentials(
      { username: "req", password: "y", server_address: "https://r.io" },
      fallback,
    );
    expect(await scoped("r.io")).toEqual({ username: "req", password: "y" });
    expect(await scoped("m.io")).toEqual({ username: "cfg", password: "x" });
    expect(await requestCredentials(undefined, fallback)("m.io")).toEqual({
      username: "cfg",
      password: "x",
    });
  });
});

describe("Authorizer", () => {
  const challenge = (header?: string) =>
    new Response('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}', {
      status: 401,
      headers: header ? { "www-authenticate": header } : {},
    });

  it("sends nothing before a challenge; a registry token always", async () => {
    expect(await new Authorizer().authorize("h", "repository:a:pull", "a")).toBeUndefined();
    const a = new Authorizer({ credentials: () => ({ registryToken: "rt" }) });
    expect(await a.authorize("h", "repository:a:pull", "a")).toBe("Bearer rt");
  });

  it("caches tokens per scope until they expire", async () => {
    let now = 0;
    const calls: string[] = [];
    const a = new Authorizer({
      now: () => now,
      fetch: (url) => {
        calls.push(url);
        return Promise.resolve(Response.json({ token: `t${calls.length}`, expires_in: 10 }));
      },
    });
    await a.challenged(
      "h",
      "a",
      challenge('Bearer realm="http://127.0.0.1:1/token"'),
      undefined,
      false,
    );
    expect(a.usesTokens("h")).toBe(true);
    expect(await a.authorize("h", "repository:a:pull", "a")).toBe("Bearer t1");
    expect(await a.authorize("h", "repository:a:pull", "a")).toBe("Bearer t1");
    expect(await a.authorize("h", "repository:b:pull", "b")).toBe("Bearer t2");
    now = 10_001;
    expect(await a.authorize("h", "repository:a:pull", "a")).toBe("Bearer t3");
    expect(calls[0]).toBe("http://127.0.0.1:1/token?scope=repository%3Aa%3Apull");
  });

  it("concurrent requests share one token fetch; a failed fetch is not cached", async () => {
    let calls = 0;
    let fail = true;
    const a = new Authorizer({
      fetch: async () => {
        calls++;
        await new Promise((r) => setTimeout(r, 10));
        if (fail) return new Response("down", { status: 500 });
        return Response.json({ access_token: "ok" });
      },
    });
    await a.challenged("h", "a", challenge('Bearer realm="http://t/"'), undefined, false);
    const errs = await Promise.allSettled([
      a.authorize("h", "repository:a:pull", "a"),
      a.authorize("h", "repository:a:pull", "a"),
    ]);
    expect(errs.map((e) => e.status)).toEqual(["rejected", "rejected"]);
    expect(calls).toBe(1);
    fail = false;
    expect(await a.authorize("h", "repository:a:pull", "a")).toBe("Bearer ok");
    expect(calls).toBe(2);
  });

  it("refuses after a fresh token is rejected, and on unknown or missing challenges", async () => {
    const a = new Authorizer();
    const err = await a.challenged(
      "h",
      "a",
      challenge('Bearer realm="http://t/"'),
      "Bearer x",
      true,
    )
      .catch((e) => e);
    expect(err).toBeInstanceOf(UnauthorizedError);
    expect(err.message).toBe(
      "pull access denied for a on h: unauthorized: credentials were rejected: " +
        "UNAUTHORIZED: authentication required",
    );
    expect(
      (await a.challenged("h", "a", challenge("Negotiate"), undefined, false).catch((e) => e))
        .message,
    ).toMatch(/unsupported authentication challenge "Negotiate"/);
    expect(
      (await a.challenged("h", "a", challenge(), undefined, false).catch((e) => e)).message,
    ).toMatch(/401 without a WWW-Authenticate challenge/);
    expect(
      (await a.challenged("h", "a", challenge("Bearer service=x"), undefined, false).catch((e) =>
        e
      )).message,
    ).toMatch(/Bearer challenge without a realm/);
  });

  it("registryErrorText quotes distribution errors or the body's start", () => {
    expect(registryErrorText('{"errors":[{"code":"DENIED","message":"no"}]}')).toBe("DENIED: no");
    expect(registryErrorText("  plain text  ")).toBe("plain text");
  });
});
