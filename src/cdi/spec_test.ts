import { describe, expect, it } from "../testing/bdd.ts";
import { isKind } from "../errdefs/errors.ts";
import { parseSpec, validateSpec } from "./spec.ts";

const JSON_SPEC = JSON.stringify({
  cdiVersion: "0.6.0",
  kind: "vendor.com/device",
  containerEdits: { env: ["VENDOR=1"] },
  devices: [{
    name: "foo",
    annotations: { ignored: "yes" },
    containerEdits: {
      env: ["FOO=bar"],
      deviceNodes: [{
        path: "/dev/foo",
        hostPath: "/dev/null",
        type: "c",
        major: 1,
        minor: 3,
        fileMode: 0o640,
        permissions: "rw",
        uid: 10,
        gid: 20,
      }],
      mounts: [{
        hostPath: "/srv/lib.so",
        containerPath: "/usr/lib/lib.so",
        type: "bind",
        options: ["ro", "bind"],
      }],
      hooks: [{
        hookName: "createContainer",
        path: "/usr/bin/hook",
        args: ["hook", "x"],
        env: ["A=1"],
        timeout: 5,
      }],
      additionalGIDs: [44],
    },
  }],
});

const YAML_SPEC = `
cdiVersion: "0.5.0"
kind: vendor.com/device
devices:
  - name: foo
    containerEdits:
      env:
        - FOO=bar
      deviceNodes:
        - path: /dev/foo
          hostPath: /dev/null
      mounts:
        - hostPath: /tmp/file
          containerPath: /etc/file
          options: [ro, nosuid, bind]
  - name: "0"
    containerEdits:
      hooks:
        - hookName: poststop
          path: /bin/true
`;

function invalid(doc: unknown): string {
  try {
    validateSpec(doc);
  } catch (e) {
    expect(isKind(e, "invalid-argument")).toBe(true);
    return (e as Error).message;
  }
  throw new Error("accepted");
}

const base = () => ({
  cdiVersion: "0.6.0",
  kind: "vendor.com/device",
  devices: [{ name: "foo", containerEdits: { env: ["A=1"] } }] as unknown[],
});

describe("CDI spec parsing", () => {
  it("reads a JSON spec with every edit kind", () => {
    const s = parseSpec(JSON_SPEC, "/etc/cdi/v.json");
    expect(s.kind).toBe("vendor.com/device");
    expect(s.containerEdits).toEqual({ env: ["VENDOR=1"] });
    const e = s.devices[0].containerEdits;
    expect(e.env).toEqual(["FOO=bar"]);
    expect(e.deviceNodes).toEqual([{
      path: "/dev/foo",
      hostPath: "/dev/null",
      type: "c",
      major: 1,
      minor: 3,
      fileMode: 0o640,
      permissions: "rw",
      uid: 10,
      gid: 20,
    }]);
    expect(e.mounts![0].options).toEqual(["ro", "bind"]);
    expect(e.hooks).toEqual([{
      hookName: "createContainer",
      path: "/usr/bin/hook",
      args: ["hook", "x"],
      env: ["A=1"],
      timeout: 5,
    }]);
    expect(e.additionalGids).toEqual([44]);
  });

  it("reads a YAML spec (several devices, a numeric-looking name)", () => {
    const s = parseSpec(YAML_SPEC, "/etc/cdi/v.yaml");
    expect(s.devices.map((d) => d.name)).toEqual(["foo", "0"]);
    expect(s.devices[0].containerEdits.deviceNodes).toEqual([
      { path: "/dev/foo", hostPath: "/dev/null" },
    ]);
    expect(s.devices[1].containerEdits.hooks![0].hookName).toBe("poststop");
    // .yml too, and JSON text in a .yaml file (YAML is a superset).
    expect(parseSpec(JSON_SPEC, "/etc/cdi/v.yml").devices.length).toBe(1);
  });

  it("names the file and the syntax error for undecodable text", () => {
    expect(() => parseSpec("{", "/etc/cdi/bad.json")).toThrow(
      "CDI spec /etc/cdi/bad.json is not valid JSON",
    );
    expect(() => parseSpec("kind: [unclosed", "/etc/cdi/bad.yaml")).toThrow(
      "CDI spec /etc/cdi/bad.yaml is not valid YAML",
    );
    expect(() => parseSpec("a: 1\na: 2\n", "/etc/cdi/dup.yaml")).toThrow("not valid YAML");
  });

  it("names the file and the field for invalid specs", () => {
    expect(() => parseSpec('{"kind":"a.com/b"}', "/etc/cdi/x.json")).toThrow(
      "CDI spec /etc/cdi/x.json is invalid: cdiVersion is required",
    );
  });

  it("validates version, kind, device names and edits", () => {
    expect(invalid({ ...base(), cdiVersion: "9.9.9" })).toContain('cdiVersion "9.9.9"');
    expect(invalid({ ...base(), kind: "nokind" })).toContain("vendor/class");
    expect(invalid({ ...base(), kind: undefined })).toContain("kind is required");
    expect(invalid({ ...base(), devices: [] })).toContain("at least one device");
    expect(invalid({ ...base(), devices: [{ name: "a b", containerEdits: { env: ["A=1"] } }] }))
      .toContain("devices[0].name");
    expect(invalid({ ...base(), devices: [{ name: "x" }] })).toContain("has no containerEdits");
    const twice = base();
    twice.devices.push(twice.devices[0]);
    expect(invalid(twice)).toContain("defined twice");
    const dev = (edits: unknown) =>
      invalid({ ...base(), devices: [{ name: "x", containerEdits: edits }] });
    expect(dev({ env: ["NOEQUALS"] })).toContain("devices[0].containerEdits.env[0]");
    expect(dev({ deviceNodes: [{ path: "dev/x" }] })).toContain("deviceNodes[0].path");
    expect(dev({ deviceNodes: [{ path: "/dev/x", type: "z" }] })).toContain("deviceNodes[0].type");
    expect(dev({ deviceNodes: [{ path: "/dev/x", permissions: "rx" }] })).toContain("permissions");
    expect(dev({ deviceNodes: [{ path: "/dev/x", major: -1 }] })).toContain("major");
    expect(dev({ deviceNodes: [{ path: "/dev/x", fileMode: "0666" }] })).toContain("fileMode");
    expect(dev({ mounts: [{ containerPath: "/x" }] })).toContain("mounts[0].hostPath is required");
    expect(dev({ mounts: [{ hostPath: "/x", containerPath: "x" }] })).toContain("containerPath");
    expect(dev({ mounts: [{ hostPath: "/x", containerPath: "/x", options: "ro" }] }))
      .toContain("options must be a list of strings");
    expect(dev({ hooks: [{ hookName: "preStart", path: "/x" }] })).toContain("hookName");
    expect(dev({ hooks: [{ hookName: "prestart", path: "x" }] })).toContain("hooks[0].path");
    expect(dev({ hooks: [{ hookName: "prestart", path: "/x", timeout: 0 }] })).toContain("timeout");
    expect(invalid({ ...base(), containerEdits: { env: "A=1" } })).toContain("containerEdits.env");
  });

  it("marks edits it cannot apply instead of refusing the file", () => {
    const s = validateSpec({
      ...base(),
      devices: [{ name: "x", containerEdits: { intelRdt: { closID: "a" } } }],
    });
    expect(s.devices[0].containerEdits.unsupported).toEqual(["intelRdt"]);
  });
});
