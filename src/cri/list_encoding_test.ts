import { describe, expect, it } from "../testing/bdd.ts";
import {
  type Container,
  ContainerState,
  ListContainersResponse,
  ListPodSandboxResponse,
  type PodSandbox,
  PodSandboxState,
} from "../gen/runtime/v1/api.ts";
import { withCachedListEncodings } from "./list_encoding.ts";
import { RuntimeServiceService } from "../grpc/cri_services.ts";

function container(i: number, state = ContainerState.CONTAINER_RUNNING): Container {
  return {
    id: `${"c".repeat(60)}${String(i).padStart(4, "0")}`,
    podSandboxId: "p".repeat(64),
    metadata: { name: `c${i}`, attempt: i % 3 },
    image: {
      image: "registry.k8s.io/e2e-test-images/busybox:1.29-2",
      annotations: {},
      userSpecifiedImage: "",
      runtimeHandler: "",
      imageRef: `sha256:${"a".repeat(64)}`,
    },
    imageRef: `sha256:${"a".repeat(64)}`,
    state,
    createdAt: 1764684000123456789n + BigInt(i),
    // A long value: lengths past 127 need a two-byte varint.
    labels: { "io.kubernetes.pod.name": `p${i}`, "x-long": "v".repeat(200 * (i % 2)) },
    annotations: { "io.kubernetes.container.restartCount": "0" },
    imageId: `sha256:${"a".repeat(64)}`,
  };
}

function sandbox(i: number): PodSandbox {
  return {
    id: `${"s".repeat(60)}${String(i).padStart(4, "0")}`,
    metadata: { name: `p${i}`, uid: `uid-${i}`, namespace: "ns", attempt: 0 },
    state: i % 2 ? PodSandboxState.SANDBOX_READY : PodSandboxState.SANDBOX_NOTREADY,
    createdAt: 1764684000123456789n,
    labels: { "io.kubernetes.pod.name": `p${i}` },
    annotations: { "kubernetes.io/config.source": "api" },
    runtimeHandler: i % 3 ? "" : "crun",
  };
}

describe("cached list encodings", () => {
  const svc = withCachedListEncodings(RuntimeServiceService);

  it("encode ListContainers and ListPodSandbox exactly as ts-proto does, cached or not", () => {
    for (const n of [0, 1, 3, 200]) {
      const lc = { containers: Array.from({ length: n }, (_, i) => container(i)) };
      const want = ListContainersResponse.encode(lc).finish();
      expect([...svc.listContainers.responseSerialize(lc)]).toEqual([...want]);
      expect([...svc.listContainers.responseSerialize(lc)]).toEqual([...want]); // from the cache
      expect(ListContainersResponse.decode(svc.listContainers.responseSerialize(lc))).toEqual(lc);
      const lp = { items: Array.from({ length: n }, (_, i) => sandbox(i)) };
      expect([...svc.listPodSandbox.responseSerialize(lp)]).toEqual([
        ...ListPodSandboxResponse.encode(lp).finish(),
      ]);
    }
  });

  it("encodes a new message for a changed container, the rest from the cache", () => {
    const list = [container(0), container(1), container(2)];
    svc.listContainers.responseSerialize({ containers: list });
    list[1] = container(1, ContainerState.CONTAINER_EXITED);
    const bytes = svc.listContainers.responseSerialize({ containers: list });
    expect(ListContainersResponse.decode(bytes).containers.map((c) => c.state)).toEqual([
      ContainerState.CONTAINER_RUNNING,
      ContainerState.CONTAINER_EXITED,
      ContainerState.CONTAINER_RUNNING,
    ]);
  });

  it("leaves every other method of the service as generated", () => {
    expect(svc.version).toBe(RuntimeServiceService.version);
    expect(svc.containerStatus).toBe(RuntimeServiceService.containerStatus);
  });
});
