// Busy time of a process by function, from the .cpuprofile files that
// `node --cpu-prof` writes at exit: what the load benchmark's --profile
// prints, so the profile behind the README's reading of the numbers can be
// produced again.

import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** A markdown table of the `top` functions by self time, as shares of busy (not idle) time, over every profile in `directory`. */
export function summarizeProfiles(directory: string, top = 25): string {
  const selfTime = new Map<string, number>();
  let busy = 0;
  for (const file of readdirSync(directory).filter((name) => name.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(join(directory, file), 'utf8')) as CpuProfile;
    const names = new Map<number, string>();
    for (const { id, callFrame } of profile.nodes) {
      // Folder and file: the plugins' index.ts files are told apart by their folder.
      const where = callFrame.url ? ` (${basename(dirname(callFrame.url))}/${basename(callFrame.url)}:${callFrame.lineNumber + 1})` : '';
      names.set(id, `${callFrame.functionName || '(anonymous)'}${where}`);
    }
    for (let i = 0; i < profile.samples.length; i++) {
      const name = names.get(profile.samples[i]!)!;
      if (name === '(idle)') continue;
      const time = profile.timeDeltas[i] ?? 0;
      busy += time;
      selfTime.set(name, (selfTime.get(name) ?? 0) + time);
    }
  }
  if (busy === 0) throw new Error(`no CPU profile with samples in ${directory}`);
  const rows = [...selfTime].sort((a, b) => b[1] - a[1]).slice(0, top);
  return `| function | share of busy time |\n|---|---|\n${rows.map(([name, time]) => `| ${name} | ${((time / busy) * 100).toFixed(1)}% |`).join('\n')}\n`;
}
