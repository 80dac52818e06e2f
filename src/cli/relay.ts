/**
 * `k8scontainerd __relay HOST PORT` (internal): connects to HOST:PORT and copies stdin to the
 * connection and the connection to stdout. The daemon runs it under `nsenter --net=<pod netns>`
 * so a port-forward reaches the pod's own loopback, as the kubelet's does.
 */
export async function relayCommand(args: string[]): Promise<number> {
  const [hostname, port] = args;
  if (!hostname || !port) {
    console.error("usage: __relay HOST PORT");
    return 2;
  }
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname, port: Number(port) });
  } catch (e) {
    console.error(`cannot connect to ${hostname}:${port} in the pod: ${(e as Error).message}`);
    return 1;
  }
  // Client → pod until the client half-closes; the session ends when the pod side closes.
  Deno.stdin.readable.pipeTo(conn.writable, { preventClose: true }).then(() => conn.closeWrite())
    .catch(() => {});
  await conn.readable.pipeTo(Deno.stdout.writable).catch(() => {});
  return 0;
}
