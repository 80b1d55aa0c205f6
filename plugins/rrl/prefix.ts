// A client's address cut to its prefix (ipv4-prefix-length, ipv6-prefix-length):
// the part of every account token that says who is being limited.

import * as ip from '@leichtgewicht/ip-codec';

export class PrefixMask {
  private readonly ipv4Mask: number;
  private readonly ipv6Length: number;

  constructor(ipv4Length: number, ipv6Length: number) {
    this.ipv4Mask = ipv4Length === 0 ? 0 : (0xffffffff << (32 - ipv4Length)) >>> 0;
    this.ipv6Length = ipv6Length;
  }

  /** The masked address in presentation form ("10.1.2.0", "2001:db8::"); family as Request.family. */
  prefixOf(address: string, family: 1 | 2): string {
    if (family === 1) {
      // Dotted quad by hand: this runs per query while rrl is configured.
      let value = 0;
      let octet = 0;
      for (let i = 0; i < address.length; i++) {
        const code = address.charCodeAt(i);
        if (code === 0x2e) {
          value = value * 256 + octet;
          octet = 0;
        } else {
          octet = octet * 10 + code - 0x30;
        }
      }
      value = ((value * 256 + octet) & this.ipv4Mask) >>> 0;
      return `${value >>> 24}.${(value >>> 16) & 0xff}.${(value >>> 8) & 0xff}.${value & 0xff}`;
    }
    const bytes = ip.v6.encode(address.split('%')[0]!);
    let bits = this.ipv6Length;
    for (let i = 0; i < 16; i++) {
      if (bits >= 8) bits -= 8;
      else {
        bytes[i] = bytes[i]! & ((0xff << (8 - bits)) & 0xff);
        bits = 0;
      }
    }
    return ip.v6.decode(bytes);
  }
}
