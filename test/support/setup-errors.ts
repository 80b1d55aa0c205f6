// Setup errors as a user sees them: a plan that fails with the file, line and
// what was expected (CF-10), shared by the plugins' setup tests.

import { expect } from 'vitest';
import { planFromCorefile } from '../../src/config.ts';
import { corefileError } from '../corefile/fixtures/helpers.ts';

/** Plans `corefile` and checks that it fails at `line` with a detail matching `detail`. */
export function expectSetupError(corefile: string, line: number, detail: RegExp): void {
  const error = corefileError(() => planFromCorefile(corefile, 'Corefile', { dnsPort: 0 }));
  expect(error.line).toBe(line);
  expect(error.message).toMatch(/^Corefile:\d+ - Error during parsing: /);
  expect(error.detail).toMatch(detail);
}
