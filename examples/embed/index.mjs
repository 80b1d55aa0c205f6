// clusterdns inside a Node program: a cluster DNS server on a free port,
// serving Kubernetes objects the program gives it, queried like any DNS
// server, changed while it runs, then closed. The program exits by itself.
//
//   npm install clusterdns        (in the repository: npm run build first)
//   node index.mjs

import { Resolver } from 'node:dns/promises';
import { createCluster, startServer } from 'clusterdns';

// The objects, as YAML text or plain objects; Pods matching a Service's
// selector become its endpoints, as in a real cluster.
const cluster = createCluster(`
apiVersion: v1
kind: Service
metadata: { name: web, namespace: demo }
spec: { clusterIP: 10.96.0.80, ports: [{ name: http, port: 80 }] }
`);

const server = await startServer({
  // Port 0: any free port; `memory` serves the objects of `clusters.default`.
  corefile: `
.:0 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        memory
    }
    cache 30
}`,
  clusters: { default: cluster },
});
const { port } = server.listeners.find((listener) => listener.transport === 'udp');
console.log(`serving on 127.0.0.1:${port}`);

// Over real UDP, as any client would ask.
const resolver = new Resolver();
resolver.setServers([`127.0.0.1:${port}`]);
console.log('web:', await resolver.resolve4('web.demo.svc.cluster.local'));

// A change is seen by the next query.
cluster.apply({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'api', namespace: 'demo' },
  spec: { clusterIP: '10.96.0.81' },
});
console.log('api:', await resolver.resolve4('api.demo.svc.cluster.local'));

cluster.delete({ kind: 'Service', metadata: { name: 'web', namespace: 'demo' } });
// In-process, without a socket.
console.log('web after delete:', (await server.resolve('web.demo.svc.cluster.local', 'A')).rcode);

await server.close();
console.log('closed');
