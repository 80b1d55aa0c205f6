// For test/udp-listener.test.ts: run in a worker thread, binds the server's
// UDP listener, answers every datagram with "re:" + its bytes, posts its port,
// and stays open until the thread is terminated.

import { parentPort } from 'node:worker_threads';
import { bindUdpListener } from '../../src/udp-listener.ts';

const listener = await bindUdpListener('127.0.0.1', 0, false);
listener.listen((packet, address, port) => listener.send(Buffer.concat([Buffer.from('re:'), packet]), port, address), () => {});
parentPort!.postMessage({ port: listener.port, kind: listener.kind });
