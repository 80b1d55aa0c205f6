// The data a template runs on, with CoreDNS's field names: .Zone, .Name,
// .Regex, .Match, .Group, .Class, .Type, .Message, .Question, .Remote and the
// .Meta method. Fields that read the packet (.Message, .Question) are built
// only when a template uses them.

import type { Request } from '../../src/plugin.ts';
import { HEADER_LENGTH, Flag, opcodeName, rcodeName } from '../../src/wire/constants.ts';
import { GoMap, GoStruct } from './govalues.ts';
import { CLASS_NAMES, TYPE_NAMES } from './names.ts';
import type { GoRegexp } from './regexp.ts';

/** The question name with the letter case the client sent, escaped as miekg/dns prints names. */
function questionName(packet: Buffer): string {
  let out = '';
  let at = HEADER_LENGTH;
  while (at < packet.length && packet[at]! !== 0) {
    const length = packet[at]!;
    for (let i = at + 1; i <= at + length && i < packet.length; i++) {
      const byte = packet[i]!;
      if ('.\\"();@$ '.includes(String.fromCharCode(byte))) out += '\\' + String.fromCharCode(byte);
      else if (byte < 0x21 || byte > 0x7e) out += '\\' + String(byte).padStart(3, '0');
      else out += String.fromCharCode(byte);
    }
    out += '.';
    at += length + 1;
  }
  return out === '' ? '.' : out;
}

function question(request: Request): GoStruct {
  const { qtype, qclass, packet } = request.query;
  const name = questionName(packet);
  const typeText = TYPE_NAMES.get(qtype) ?? `TYPE${qtype}`;
  const classText = CLASS_NAMES.get(qclass) ?? `CLASS${qclass}`;
  return new GoStruct('*dns.Question', { Name: () => name, Qtype: () => qtype, Qclass: () => qclass }, {},
    () => `;${name}\t${classText}\t ${typeText}`);
}

function message(request: Request, first: GoStruct): GoStruct {
  const { id, flags, opcode } = request.query;
  const bit = (mask: number) => () => (flags & mask) !== 0;
  const header: Record<string, () => unknown> = {
    Id: () => id, Response: () => false, Opcode: () => opcode, Authoritative: bit(Flag.AA), Truncated: bit(Flag.TC),
    RecursionDesired: bit(Flag.RD), RecursionAvailable: bit(Flag.RA), Zero: bit(Flag.Z), AuthenticatedData: bit(Flag.AD),
    CheckingDisabled: bit(Flag.CD), Rcode: () => 0,
  };
  const headerStruct = new GoStruct('dns.MsgHdr', header);
  const flagNames = (['RD', 'AA', 'TC', 'RA', 'Z', 'AD', 'CD'] as const).filter((name) => flags & Flag[name]).map((name) => name.toLowerCase());
  const text = () => `;; opcode: ${opcodeName(opcode)}, status: ${rcodeName(0)}, id: ${id}\n` +
    `;; flags:${flagNames.map((name) => ' ' + name).join('')}; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 0\n\n` +
    `;; QUESTION SECTION:\n${first.stringer!()}\n`;
  return new GoStruct('*dns.Msg', {
    MsgHdr: () => headerStruct, ...header, Compress: () => false, Question: () => [first], Answer: () => [], Ns: () => [], Extra: () => [],
  }, {}, text);
}

/**
 * The template data for a question that matched `regex` (null: the default
 * `.*`) in `zone`. For an ANY question, class and type are the rule's.
 */
export function templateData(request: Request, zone: string, regex: GoRegexp | null, groups: string[], className: string, typeName: string): GoStruct {
  const { qname } = request.query;
  let questionStruct: GoStruct | null = null;
  const firstQuestion = () => (questionStruct ??= question(request));
  return new GoStruct('*template.templateData', {
    Zone: () => zone,
    Name: () => qname,
    Regex: () => regex?.source ?? '.*',
    Match: () => groups,
    Group: () => {
      const entries = new Map<string, unknown>();
      groups.forEach((group, index) => entries.set(String(index), group));
      regex?.names.forEach((name, index) => {
        if (name !== '') entries.set(name, groups[index] ?? '');
      });
      return new GoMap(entries, '', 'map[string]string');
    },
    Class: () => className,
    Type: () => typeName,
    Message: () => message(request, firstQuestion()),
    Question: firstQuestion,
    Remote: () => request.remoteAddress,
  }, {
    // Metadata needs the metadata plugin, which clusterdns does not have: every name is empty, as in CoreDNS without it.
    Meta: () => '',
  });
}
