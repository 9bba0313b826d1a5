// A TCP relay to a real server on 127.0.0.1, for tests that move or tamper with the traffic.
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';

/** How a relay passes bytes on: both default to copying them unchanged. */
export interface RelayHooks {
  /** Bytes from the client, to be written to `upstream`. */
  fromClient?(chunk: Buffer, upstream: Socket): void;
  /** Bytes from the server, to be written to `client`. */
  fromServer?(chunk: Buffer, client: Socket): void;
}

/**
 * A relay on a free port to `target`, whose target can be moved: a client configured with one
 * address sees a failover (the address now reaches the promoted node). `moveTo` also cuts every
 * open connection, as the old server's death would. Each connection gets its own `hooks()`.
 */
export async function startRelay(target: number, hooks: () => RelayHooks = () => ({})) {
  let port = target;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    const { fromClient, fromServer } = hooks();
    if (fromClient) client.on('data', (chunk: Buffer) => fromClient(chunk, upstream));
    else client.pipe(upstream);
    if (fromServer) upstream.on('data', (chunk: Buffer) => fromServer(chunk, client));
    else upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: listening } = server.address() as AddressInfo;
  return {
    url: `postgres://postgres@127.0.0.1:${listening}/postgres`,
    moveTo(next: number) {
      port = next;
      for (const socket of sockets) socket.destroy();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
