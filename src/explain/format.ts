// An explanation as text, for people: what `clusterdns explain` prints
// without --json and the endpoint sends for Accept: text/plain.

import type { ExplainedRecord, Explanation } from './trace.ts';

export function formatExplanation(explanation: Explanation): string {
  const { question, server } = explanation;
  const lines: string[] = [];
  lines.push(`;; ${question.name} ${question.type} from ${question.from} over ${question.transport}`);
  const others = server.candidates.filter((zone) => zone !== server.zone);
  lines.push(`;; listener ${server.listener}, zone ${server.zone ?? '(none)'}` +
    (server.block ? ` (server block at ${server.block.at}: ${server.block.zones.join(' ')})` : '') +
    (others.length > 0 ? `; also containing the name: ${others.join(' ')}` : ''));
  lines.push('', ';; STEPS:');
  explanation.steps.forEach((step, index) => {
    const detail = Object.entries(step.detail).map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
    lines.push(`${String(index + 1).padStart(2)}. ${step.plugin}: ${step.outcome}${detail.length > 0 ? ` (${detail.join(', ')})` : ''}`);
  });
  lines.push('', `;; ${explanation.rcode}${explanation.flags.length > 0 ? `, flags: ${explanation.flags.join(' ')}` : ''}, ${explanation.timeMs} ms`);
  for (const [title, records] of [['ANSWER', explanation.answer], ['AUTHORITY', explanation.authority], ['ADDITIONAL', explanation.additional]] as const) {
    if (records.length === 0) continue;
    lines.push('', `;; ${title} SECTION:`, ...records.map(recordLine));
  }
  return `${lines.join('\n')}\n`;
}

function recordLine(record: ExplainedRecord): string {
  return `${record.name}\t${record.ttl}\tIN\t${record.type}\t${record.data}`;
}
