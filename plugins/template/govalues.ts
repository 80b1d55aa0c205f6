// Go values as templates see them: structs with fields and methods, maps
// with a zero value, and the invalid value a missing map key gives.

/** What `.Group.nosuch` evaluates to: printed "<no value>", false in conditions (Go's invalid reflect.Value). */
export const NO_VALUE: unique symbol = Symbol('no value');

/** A Go struct: named fields (computed on first use) and methods. */
export class GoStruct {
  readonly typeName: string;
  private readonly getters: Readonly<Record<string, () => unknown>>;
  private readonly methods: Readonly<Record<string, (...args: unknown[]) => unknown>>;
  private readonly values = new Map<string, unknown>();
  /** fmt's String() for the type, when it has one. */
  readonly stringer: (() => string) | null;

  constructor(
    typeName: string,
    fields: Record<string, () => unknown>,
    methods: Record<string, (...args: unknown[]) => unknown> = {},
    stringer: (() => string) | null = null,
  ) {
    this.typeName = typeName;
    this.getters = fields;
    this.methods = methods;
    this.stringer = stringer;
  }

  hasField(name: string): boolean {
    return Object.hasOwn(this.getters, name);
  }

  field(name: string): unknown {
    if (!this.values.has(name)) this.values.set(name, this.getters[name]!());
    return this.values.get(name);
  }

  method(name: string): ((...args: unknown[]) => unknown) | undefined {
    return Object.hasOwn(this.methods, name) ? this.methods[name] : undefined;
  }

  /** Field names in declaration order, for printing the struct. */
  fieldNames(): string[] {
    return Object.keys(this.getters);
  }
}

/** A Go map with string keys; `zero` is what `index` gives for a missing key. */
export class GoMap {
  private readonly entries: Map<string, unknown>;
  readonly zero: unknown;
  readonly typeName: string;

  constructor(entries: Map<string, unknown>, zero: unknown, typeName: string) {
    this.entries = entries;
    this.zero = zero;
    this.typeName = typeName;
  }

  get size(): number {
    return this.entries.size;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  get(key: string): unknown {
    return this.entries.get(key);
  }

  sortedKeys(): string[] {
    return [...this.entries.keys()].sort();
  }
}

/** Go's truth of a value in if/with/and/or/not. */
export function isTrue(value: unknown): boolean {
  if (value === NO_VALUE || value === null || value === undefined) return false;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') return value !== '';
  if (typeof value === 'number') return value !== 0;
  if (typeof value === 'bigint') return value !== 0n;
  if (Array.isArray(value)) return value.length > 0;
  if (value instanceof GoMap) return value.size > 0;
  return true;
}

/** The Go type name of a value, for error messages. */
export function goTypeName(value: unknown): string {
  if (value instanceof GoStruct) return value.typeName;
  if (value instanceof GoMap) return value.typeName;
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'bool';
  if (typeof value === 'bigint') return 'uint64';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int' : 'float64';
  if (Array.isArray(value)) return '[]string';
  if (typeof value === 'function') return 'func';
  return '<nil>';
}
