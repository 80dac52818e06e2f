/** Management API: Containers, Tasks and Events services over the ContainerService. */
import type { CallContext } from "../grpc/server.ts";
import { namespaceOf } from "./namespace.ts";
import { required, toNanos } from "./convert.ts";
import { type ContainerService, IPS_LABEL, type TaskView } from "../services/containers/service.ts";
import type { Container } from "../metadata/containers.ts";
import type { Exchange } from "../events/exchange.ts";
import type * as cpb from "../gen/k8scontainerd/services/containers/v1/containers.ts";
import * as tpb from "../gen/k8scontainerd/services/tasks/v1/tasks.ts";
import type * as epb from "../gen/k8scontainerd/services/events/v1/events.ts";
import type { StreamingServer } from "../streaming/server.ts";
import { managementStreamId } from "../services/containers/stream_sessions.ts";
import { FailedPreconditionError } from "../errdefs/errors.ts";

function wireContainer(c: Container): cpb.Container {
  return {
    id: c.id,
    labels: c.labels,
    image: c.image,
    runtime: c.runtime,
    spec: JSON.stringify(c.spec),
    snapshotter: c.snapshotter,
    snapshotKey: c.snapshotKey,
    createdAt: toNanos(c.createdAt),
    updatedAt: toNanos(c.updatedAt),
    ips: c.labels[IPS_LABEL] ? c.labels[IPS_LABEL].split(",") : [],
  };
}

const STATUS: Record<string, tpb.Status> = {
  created: tpb.Status.CREATED,
  running: tpb.Status.RUNNING,
  stopped: tpb.Status.STOPPED,
  paused: tpb.Status.PAUSED,
};

function wireTask(t: TaskView): tpb.Process {
  return {
    id: t.id,
    pid: t.pid ?? 0,
    status: STATUS[t.status] ?? tpb.Status.UNKNOWN,
    exitStatus: t.exitCode ?? 0,
    exitedAt: toNanos(t.finishedAt),
    oomKilled: !!t.oomKilled,
    logPath: t.logPath,
  };
}

export function containersApi(svc: ContainerService) {
  return {
    get: (req: cpb.GetContainerRequest, ctx: CallContext): Promise<cpb.GetContainerResponse> =>
      Promise.resolve({
        container: wireContainer(svc.get(namespaceOf(ctx.metadata), required(req.id, "id"))),
      }),
    list: (
      _req: cpb.ListContainersRequest,
      ctx: CallContext,
    ): Promise<cpb.ListContainersResponse> =>
      Promise.resolve({ containers: svc.list(namespaceOf(ctx.metadata)).map(wireContainer) }),
    async create(
      req: cpb.CreateContainerRequest,
      ctx: CallContext,
    ): Promise<cpb.CreateContainerResponse> {
      const c = await svc.create(namespaceOf(ctx.metadata), {
        id: required(req.id, "id"),
        image: required(req.image, "image"),
        runtime: req.runtime || undefined,
        labels: req.labels,
        args: req.args,
        env: req.env,
        cwd: req.cwd,
        user: req.user,
        tty: req.tty,
        stdin: req.stdin,
        stdinOnce: req.stdinOnce,
        mounts: req.mounts,
        netHost: req.netHost,
        readonlyRootfs: req.readonlyRootfs,
        privileged: req.privileged,
        snapshotter: req.snapshotter || undefined,
        hostname: req.hostname || undefined,
        network: req.network || undefined,
        ports: req.ports.map((p) => ({
          hostPort: p.hostPort,
          containerPort: p.containerPort,
          protocol: p.protocol || undefined,
          hostIP: p.hostIp || undefined,
        })),
        restartPolicy: req.restartPolicy || undefined,
      });
      return { container: wireContainer(c) };
    },
    async delete(
      req: cpb.DeleteContainerRequest,
      ctx: CallContext,
    ): Promise<cpb.DeleteContainerResponse> {
      await svc.delete(namespaceOf(ctx.metadata), required(req.id, "id"));
      return {};
    },
  };
}

export function tasksApi(svc: ContainerService, streaming: () => StreamingServer) {
  const ns = (ctx: CallContext) => namespaceOf(ctx.metadata);
  return {
    async create(req: tpb.CreateTaskRequest, ctx: CallContext): Promise<tpb.CreateTaskResponse> {
      const { pid } = await svc.createTask(ns(ctx), required(req.containerId, "container_id"), {
        logPath: req.logPath || undefined,
      });
      return { containerId: req.containerId, pid };
    },
    async start(req: tpb.StartRequest, ctx: CallContext): Promise<tpb.StartResponse> {
      return await svc.start(ns(ctx), required(req.containerId, "container_id"), {
        restart: true,
        byUser: true,
      });
    },
    async delete(req: tpb.DeleteTaskRequest, ctx: CallContext): Promise<tpb.DeleteResponse> {
      const r = await svc.deleteTask(
        ns(ctx),
        required(req.containerId, "container_id"),
        req.force,
        { byUser: true },
      );
      return { exitStatus: r.exitCode, exitedAt: toNanos(r.finishedAt) };
    },
    async get(req: tpb.GetRequest, ctx: CallContext): Promise<tpb.GetResponse> {
      return {
        process: wireTask(await svc.task(ns(ctx), required(req.containerId, "container_id"))),
      };
    },
    async list(_req: tpb.ListTasksRequest, ctx: CallContext): Promise<tpb.ListTasksResponse> {
      return { tasks: (await svc.tasks(ns(ctx))).map(wireTask) };
    },
    async kill(req: tpb.KillRequest, ctx: CallContext): Promise<tpb.KillResponse> {
      await svc.kill(ns(ctx), required(req.containerId, "container_id"), req.signal, req.all, {
        byUser: true,
      });
      return {};
    },
    async exec(req: tpb.ExecRequest, ctx: CallContext): Promise<tpb.ExecResponse> {
      const r = await svc.exec(ns(ctx), required(req.containerId, "container_id"), {
        args: req.args,
        env: req.env,
        cwd: req.cwd || undefined,
        user: req.user || undefined,
        timeoutMs: Number(req.timeoutMs) || undefined,
        stdin: req.stdin.length ? new Uint8Array(req.stdin) : undefined,
      });
      return { exitCode: r.exitCode, stdout: Buffer.from(r.stdout), stderr: Buffer.from(r.stderr) };
    },
    async pause(req: tpb.PauseTaskRequest, ctx: CallContext): Promise<tpb.PauseTaskResponse> {
      await svc.pause(ns(ctx), required(req.containerId, "container_id"));
      return {};
    },
    async resume(req: tpb.ResumeTaskRequest, ctx: CallContext): Promise<tpb.ResumeTaskResponse> {
      await svc.resume(ns(ctx), required(req.containerId, "container_id"));
      return {};
    },
    async listPids(req: tpb.ListPidsRequest, ctx: CallContext): Promise<tpb.ListPidsResponse> {
      return { pids: await svc.pids(ns(ctx), required(req.containerId, "container_id")) };
    },
    async metrics(req: tpb.MetricsRequest, ctx: CallContext): Promise<tpb.MetricsResponse> {
      const m = await svc.metrics(ns(ctx), required(req.containerId, "container_id"));
      return {
        cpuUsageNs: BigInt(m.cpuUsageNs),
        memoryUsageBytes: BigInt(m.memoryUsageBytes),
        memoryWorkingSetBytes: BigInt(m.memoryWorkingSetBytes),
        memoryLimitBytes: BigInt(m.memoryLimitBytes),
        pids: BigInt(m.pids),
        timestamp: toNanos(m.timestamp),
      };
    },
    async wait(req: tpb.WaitRequest, ctx: CallContext): Promise<tpb.WaitResponse> {
      const r = await svc.wait(ns(ctx), required(req.containerId, "container_id"));
      return { exitStatus: r.exitCode, exitedAt: toNanos(r.finishedAt), oomKilled: r.oomKilled };
    },
    async streamUrl(req: tpb.StreamUrlRequest, ctx: CallContext): Promise<tpb.StreamUrlResponse> {
      const id = required(req.containerId, "container_id");
      const t = await svc.task(ns(ctx), id);
      if (t.status !== "running") {
        throw new FailedPreconditionError(`task of container "${id}" is ${t.status}, not running`);
      }
      const containerId = managementStreamId(ns(ctx), id);
      const stdio = { tty: req.tty, stdin: req.stdin, stdout: true, stderr: !req.tty };
      return {
        url: req.execArgs.length
          ? streaming().getExecUrl({ containerId, cmd: req.execArgs, ...stdio })
          : streaming().getAttachUrl({ containerId, ...stdio }),
      };
    },
    async *logs(req: tpb.LogsRequest, ctx: CallContext): AsyncGenerator<tpb.LogsResponse> {
      for await (
        const data of svc.logs(ns(ctx), required(req.containerId, "container_id"), {
          follow: req.follow,
          tail: Number(req.tail),
          signal: ctx.signal,
        })
      ) yield { data: Buffer.from(data) };
    },
  };
}

export function eventsApi(exchange: Exchange) {
  return {
    async *subscribe(req: epb.SubscribeRequest, ctx: CallContext): AsyncGenerator<epb.Envelope> {
      const sub = exchange.subscribe({
        namespace: req.allNamespaces ? undefined : namespaceOf(ctx.metadata),
        topics: req.topics,
        signal: ctx.signal,
      });
      for await (const e of sub) {
        yield {
          timestamp: toNanos(e.timestamp),
          namespace: e.namespace,
          topic: e.topic,
          event: JSON.stringify(e.event),
        };
      }
    },
  };
}
