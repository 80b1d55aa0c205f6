// The top-K views the explain endpoint serves (issue 13, item 5), per
// listener: the names answered NXDOMAIN most, the names whose search-path
// walk wasted the most queries (grouped by the name the client meant), and
// the busiest clients. Each is a space-saving sketch of fixed size, so memory
// stays the same whatever the traffic; they are fed only when the explain
// plugin is configured.

import type { Request } from '../../src/plugin.ts';
import { SpaceSaving, type TopEntry } from '../../src/explain/topk.ts';
import { Rcode } from '../../src/wire/constants.ts';
import type { Reply } from '../../src/wire/message.ts';
import { isSubdomain } from '../../src/wire/names.ts';

/** Counters per view: enough beyond K that the K shown are the real top ones under skewed traffic. */
const CAPACITY_FACTOR = 5;

export type ViewName = 'nxdomain' | 'search_waste' | 'clients';
export const VIEW_NAMES: readonly ViewName[] = ['nxdomain', 'search_waste', 'clients'];

export class ServerViews {
  readonly server: string;
  readonly views: Record<ViewName, SpaceSaving>;

  constructor(server: string, topK: number) {
    this.server = server;
    const capacity = topK * CAPACITY_FACTOR;
    this.views = { nxdomain: new SpaceSaving(capacity), search_waste: new SpaceSaving(capacity), clients: new SpaceSaving(capacity) };
  }
}

export interface ViewReport {
  /** Events the view counted. */
  total: number;
  /** Distinct keys held (at most capacity). */
  tracked: number;
  capacity: number;
  top: TopEntry[];
}

export class Offenders {
  readonly topK: number;
  /** The zones of the server block these views count for. */
  readonly zones: readonly string[];
  private readonly servers = new Map<string, ServerViews>();
  private last: ServerViews | null = null;
  /** Cluster zones, for telling search-path waste; read at first use (the kubernetes plugin is set up after this one). */
  private searchZones: readonly string[] | null = null;
  private readonly clusterZones: () => readonly string[];

  constructor(topK: number, zones: readonly string[], clusterZones: () => readonly string[]) {
    this.topK = topK;
    this.zones = zones;
    this.clusterZones = clusterZones;
  }

  /** Counts one answered query; returns the reply untouched. */
  observe(request: Request, reply: Reply): Reply {
    let views = this.last;
    if (views === null || views.server !== request.server) views = this.viewsFor(request.server);
    views.views.clients.add(request.remoteAddress);
    if (reply.rcode === Rcode.NXDOMAIN) {
      const qname = request.query.qname;
      views.views.nxdomain.add(qname);
      const origin = searchOrigin(qname, (this.searchZones ??= this.clusterZones()));
      if (origin !== null) views.views.search_waste.add(origin);
    }
    return reply;
  }

  report(): { server: string; zones: readonly string[]; views: Record<ViewName, ViewReport> }[] {
    return [...this.servers.values()].map((views) => ({
      server: views.server,
      zones: this.zones,
      views: Object.fromEntries(VIEW_NAMES.map((name) => {
        const sketch = views.views[name];
        return [name, { total: sketch.total, tracked: sketch.size, capacity: sketch.capacity, top: sketch.top(this.topK) }];
      })) as Record<ViewName, ViewReport>,
    }));
  }

  serverViews(): Iterable<ServerViews> {
    return this.servers.values();
  }

  private viewsFor(server: string): ServerViews {
    let views = this.servers.get(server);
    if (views === undefined) {
      views = new ServerViews(server, this.topK);
      this.servers.set(server, views);
    }
    this.last = views;
    return views;
  }
}

/**
 * The name a client meant when `qname` is that name with a search suffix of
 * a pod's resolv.conf appended (NS.svc.ZONE, svc.ZONE or ZONE), or null. A
 * heuristic on the shape of the name: what is left before `NS.svc.ZONE` must
 * have two labels or more, and not start with `_` (an SRV name), or before
 * ZONE two labels or more not ending in svc or pod. A failed endpoint name
 * (pod.service.NS.svc.ZONE) has the same shape and counts too.
 */
export function searchOrigin(qname: string, zones: readonly string[]): string | null {
  for (const zone of zones) {
    if (qname === zone || !isSubdomain(qname, zone)) continue;
    const labels = (zone === '.' ? qname.slice(0, -1) : qname.slice(0, qname.length - zone.length - 1)).split('.');
    const last = labels.length - 1;
    if (labels[last] === 'svc') {
      if (labels.length < 4 || labels[0]!.startsWith('_')) return null;
      // An in-cluster name asked without its trailing dot: svc.ZONE appended, not NS.svc.ZONE.
      const beforeSvc = `${labels.slice(0, last).join('.')}.`;
      if (zones.some((inner) => inner !== '.' && isSubdomain(beforeSvc, inner))) return beforeSvc;
      return `${labels.slice(0, last - 1).join('.')}.`;
    }
    if (labels[last] === 'pod' || labels.length < 2) return null;
    return `${labels.join('.')}.`;
  }
  return null;
}
