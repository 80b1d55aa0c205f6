// The rrl account table: one balance per client prefix and kind of response
// (or per prefix alone, for requests), credited with time and debited per
// response, in the credit scheme of CoreDNS's rrl (after BIND's RRL).
//
// A balance is kept as the time from which the next response is paid for
// (`allowTime`); the balance itself is how far `now` is past it, in
// milliseconds of allowance. It is at most one second of credit and at least
// minus the window, so a client that keeps sending stays limited until it
// backs off, and one that paused gets a burst of one second's allowance.
//
// The table holds at most `capacity` accounts; a new account when it is full
// evicts the one used longest ago (a Map keeps insertion order, and a used
// account is moved to the end). CoreDNS's rrl evicts an arbitrary one.

interface Account {
  allowTime: number;
  /** Dropped responses left before the next one slips through (0: never slips). */
  slipCountdown: number;
}

/** What a debit says about one response or request. */
export const Verdict = { SEND: 0, DROP: 1, SLIP: 2 } as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

export class AccountTable {
  private readonly accounts = new Map<string, Account>();
  private readonly capacity: number;
  private readonly windowMs: number;
  private readonly slipRatio: number;
  private readonly now: () => number;

  constructor(capacity: number, windowMs: number, slipRatio: number, now: () => number = performance.now.bind(performance)) {
    this.capacity = capacity;
    this.windowMs = windowMs;
    this.slipRatio = slipRatio;
    this.now = now;
  }

  get size(): number {
    return this.accounts.size;
  }

  /**
   * Charges one response (or request) of `token`, each worth `intervalMs` of
   * credit (1000 / the per-second allowance).
   */
  debit(token: string, intervalMs: number): Verdict {
    const now = this.now();
    const account = this.accounts.get(token);
    if (account === undefined) {
      // The first response of an account is always sent; it starts with a
      // full second of credit less this response.
      if (this.capacity === 0) return Verdict.SEND;
      if (this.accounts.size >= this.capacity) this.accounts.delete(this.accounts.keys().next().value!);
      this.accounts.set(token, { allowTime: now - 1000 + intervalMs, slipCountdown: this.slipRatio });
      return Verdict.SEND;
    }
    // Most recently used last: re-inserting moves it to the end of the Map's order.
    this.accounts.delete(token);
    this.accounts.set(token, account);
    let balance = now - account.allowTime - intervalMs;
    if (balance >= 1000) balance = 1000 - intervalMs;
    else if (balance < -this.windowMs) balance = -this.windowMs;
    account.allowTime = now - balance;
    // As in rrl, the slip countdown runs on every debit that is not in credit.
    let slip = false;
    if (balance <= 0 && account.slipCountdown !== 0) {
      if (account.slipCountdown === 1) {
        account.slipCountdown = this.slipRatio;
        slip = true;
      } else {
        account.slipCountdown--;
      }
    }
    if (balance >= 0) return Verdict.SEND;
    return slip ? Verdict.SLIP : Verdict.DROP;
  }
}
