// bufsize: caps the EDNS payload size clients advertise, as CoreDNS 1.11's
// bufsize plugin does, so UDP replies stay under a size that is not
// fragmented (1232 bytes by default, the DNS Flag Day 2020 value).

import { wrongArgCount } from '../../src/corefile/setup.ts';
import { definePlugin } from '../../src/plugin.ts';
import { lowerUdpSize } from '../../src/wire/query.ts';

export interface BufsizeConfig {
  size: number;
}

const DEFAULT_SIZE = 1232;

export default definePlugin<BufsizeConfig>({
  name: 'bufsize',
  parse(directives) {
    // Only the first line counts (CoreDNS 1.11.3).
    const { args } = directives[0]!;
    if (args.length === 0) return { size: DEFAULT_SIZE };
    const last = args.at(-1)!;
    if (args.length > 1 || !/^[+-]?\d+$/.test(last.text)) throw wrongArgCount(last);
    const size = Number(last.text);
    // RFC 6891's range, as CoreDNS checks it.
    if (size < 512 || size > 4096) throw wrongArgCount(last);
    return { size };
  },
  create({ size }) {
    return {
      serve(request, next) {
        // The client's OPT is lowered in place, as CoreDNS does: the reply
        // advertises and fits the lower size, and forward passes it upstream.
        lowerUdpSize(request.query, size);
        return next(request);
      },
    };
  },
});
