// Domain names in presentation form ("www.example.org.") and their labels.
// Names in the code base are lowercased and fully qualified unless noted.

/** Splits a presentation-form name into wire labels (latin1 strings), undoing \. and \DDD escapes. */
export function nameToLabels(name: string): string[] {
  if (name === '.' || name === '') return [];
  const labels: string[] = [];
  let label = '';
  for (let i = 0; i < name.length; i++) {
    const char = name[i]!;
    if (char === '\\') {
      const digits = name.slice(i + 1, i + 4);
      if (/^\d{3}$/.test(digits)) {
        label += String.fromCharCode(Number(digits));
        i += 3;
      } else {
        label += name[i + 1] ?? '';
        i += 1;
      }
    } else if (char === '.') {
      labels.push(label);
      label = '';
    } else {
      label += char;
    }
  }
  if (label !== '') labels.push(label);
  return labels;
}

/** Lowercased and fully qualified, as zones and qnames are compared. */
export function canonicalName(name: string): string {
  const lower = name.toLowerCase();
  if (lower === '' || lower === '.') return '.';
  return lower.endsWith('.') && !lower.endsWith('\\.') ? lower : lower + '.';
}

/** True when `name` is `zone` or lies under it; both canonical. */
export function isSubdomain(name: string, zone: string): boolean {
  if (zone === '.') return true;
  if (name.length < zone.length) return false;
  if (name.length === zone.length) return name === zone;
  return name.endsWith(zone) && name[name.length - zone.length - 1] === '.';
}

/** The parent of a canonical name ("a.b." → "b.", "b." → "."); null for the root. */
export function parentName(name: string): string | null {
  if (name === '.') return null;
  for (let i = 0; i < name.length - 1; i++) {
    if (name[i] === '\\') {
      i++;
      continue;
    }
    if (name[i] === '.') return name.slice(i + 1);
  }
  return '.';
}

/** Longest of `zones` that contains `name`, or null. */
export function longestMatchingZone(name: string, zones: readonly string[]): string | null {
  let best: string | null = null;
  for (const zone of zones) {
    if (isSubdomain(name, zone) && (best === null || zone.length > best.length)) best = zone;
  }
  return best;
}

/** A name the wire can carry (miekg/dns's IsDomainName): labels of 1..63 bytes, at most 255 bytes in all. */
export function isWireName(name: string): boolean {
  if (name === '.') return true;
  const labels = nameToLabels(name);
  if (labels.length === 0) return false;
  let length = 1;
  for (const label of labels) {
    if (label.length === 0 || label.length > 63) return false;
    length += label.length + 1;
  }
  return length <= 255;
}
