// bind: which addresses the block's listeners open on (CF-23). Setup only.

import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { setupError, unknownProperty } from '../../src/corefile/setup.ts';
import type { Token } from '../../src/corefile/types.ts';
import { definePlugin } from '../../src/plugin.ts';

/** An IP as written, or every address of the named interface (read at setup and reload). */
function resolve(token: Token): string[] {
  if (isIP(token.text)) return [token.text];
  const addresses = networkInterfaces()[token.text];
  if (!addresses) throw setupError(token, `plugin/bind: '${token.text}' is neither an IP address nor a network interface on this host`);
  // Link-local IPv6 addresses need a zone index to bind; CoreDNS skips them too.
  return addresses.filter((address) => !(address.family === 'IPv6' && address.address.startsWith('fe80:'))).map((address) => address.address);
}

export default definePlugin<string[]>({
  name: 'bind',
  parse(directives) {
    const addresses = new Set<string>();
    for (const directive of directives) {
      if (directive.args.length === 0) throw setupError(directive.name, "plugin/bind: at least one address or interface is required after 'bind'");
      const own = new Set(directive.args.flatMap(resolve));
      for (const option of directive.block ?? []) {
        if (option.name.text !== 'except') throw unknownProperty('bind', option.name);
        if (option.args.length === 0) throw setupError(option.name, "plugin/bind: 'except' needs at least one address or interface");
        // `except` removes from this directive's own set only (CF-23).
        for (const excluded of option.args.flatMap(resolve)) own.delete(excluded);
      }
      for (const address of own) addresses.add(address);
    }
    return [...addresses];
  },
  create(addresses, block) {
    block.bindAddresses = addresses;
    return {};
  },
});
