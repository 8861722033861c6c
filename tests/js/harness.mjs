// Shared helpers of the JS client checks: a deadline, the hub's metrics, publishing.
export const hub = process.argv[2];
if (!hub) {
  console.error('usage: node <script> http://127.0.0.1:PORT');
  process.exit(2);
}
export const wsUrl = hub.replace(/^http/, 'ws') + '/graphql';

// Nothing here may hang the test run.
const limit = Number(process.env.SUBHUB_JS_TIMEOUT_MS || 20_000);
setTimeout(() => fail(`timed out after ${limit / 1000} s`), limit).unref();

export function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

export async function metric(name) {
  const text = await (await fetch(`${hub}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(name + ' ') || line.startsWith(name + '{'))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

export async function waitMetric(name, value) {
  for (let i = 0; i < 1000; i++) {
    if ((await metric(name)) === value) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  fail(`${name} never reached ${value} (now ${await metric(name)})`);
}

export async function publish(topic, body) {
  const res = await fetch(`${hub}/publish/${topic}`, { method: 'POST', body: JSON.stringify(body) });
  if (!res.ok) fail(`publish answered ${res.status}`);
}

export function expectEqual(actual, expected, what) {
  const [a, e] = [JSON.stringify(actual), JSON.stringify(expected)];
  if (a !== e) fail(`${what}: expected ${e}, got ${a}`);
}
