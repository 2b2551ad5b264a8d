// Versions the runner states in its reports and in the driver handshake.
import { readFileSync } from 'node:fs';

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export const RUNNER_NAME = 'cpspec';
export const RUNNER_VERSION = packageVersion();
/** Driver protocol version spoken by the runner (conformance/PROTOCOL.md). */
export const PROTOCOL_VERSION = 1;
/** Version of the JSON report layout (bump on any incompatible change). */
export const REPORT_SCHEMA_VERSION = 1;
