// The GraphQL-over-HTTP audit of graphql-http against the hub's /graphql. Every MUST ("error"
// when violated) has to pass; the counts are printed.
import { auditServer } from 'graphql-http';
import { hub } from './harness.mjs';

const results = await auditServer({ url: `${hub}/graphql` });
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const result of results) {
  counts[result.status] += 1;
  if (result.status !== 'ok') console.log(`${result.status} ${result.id} ${result.name}: ${result.reason ?? ''}`);
}
console.log(`graphql-http audit: ${results.length} audits, ok ${counts.ok}, notice ${counts.notice}, warn ${counts.warn}, error ${counts.error}`);
process.exit(counts.error === 0 ? 0 : 1);
