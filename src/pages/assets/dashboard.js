// The live dashboard: numbers from the hub's status stream (GET /status, one snapshot a
// second), charts of the last minutes, and a live tail of one topic over GraphQL over SSE.
'use strict';

const $ = (id) => document.getElementById(id);
const number = new Intl.NumberFormat();
const rate = (value) => (value >= 100 ? number.format(Math.round(value)) : value.toFixed(1)) + '/s';
const HISTORY = 300;
let samples = [];
let hub = null;

// A token for hubs with [auth]: kept for this browser tab only, sent as the query parameter
// the hub names (EventSource cannot set headers).
const token = () => sessionStorage.getItem('subhub.token') || '';
$('token').value = token();
$('token').addEventListener('change', () => {
  sessionStorage.setItem('subhub.token', $('token').value.trim());
  connectStatus();
});
function withToken(url) {
  const name = hub && hub.token_query;
  if (!name || !token()) return url;
  return url + (url.includes('?') ? '&' : '?') + encodeURIComponent(name) + '=' + encodeURIComponent(token());
}

// ---- status stream
let status = null;
function connectStatus() {
  if (status) status.close();
  status = new EventSource(withToken('/status'));
  status.addEventListener('open', () => setLive(true));
  status.addEventListener('error', () => setLive(false));
  status.addEventListener('history', (event) => {
    samples = JSON.parse(event.data);
    drawCharts();
  });
  status.addEventListener('status', (event) => {
    const snapshot = JSON.parse(event.data);
    samples.push(snapshot.sample);
    if (samples.length > HISTORY) samples.splice(0, samples.length - HISTORY);
    render(snapshot);
    drawCharts();
  });
}

function setLive(on) {
  $('live').textContent = on ? 'live' : 'reconnecting…';
  $('live').className = 'badge ' + (on ? 'on' : 'off');
}

function cell(text, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function health(ok, good, bad) {
  const td = document.createElement('td');
  const dot = document.createElement('span');
  dot.className = 'dot ' + (ok ? 'ok' : 'bad');
  td.append(dot, ok ? good : bad);
  return td;
}

function rows(tbody, items, build, empty) {
  tbody.replaceChildren(
    ...(items.length
      ? items.map((item) => {
          const tr = document.createElement('tr');
          tr.append(...build(item));
          return tr;
        })
      : [emptyRow(empty, tbody.closest('table').querySelectorAll('th').length)]),
  );
}

function emptyRow(text, span) {
  const tr = document.createElement('tr');
  const td = cell(text, 'muted');
  td.colSpan = span;
  tr.append(td);
  return tr;
}

function render(snapshot) {
  const first = hub === null;
  hub = snapshot.hub;
  $('version').textContent = 'v' + hub.version;
  $('token-label').hidden = !hub.auth;
  const s = snapshot.sample;
  $('connections-total').textContent = number.format(s.connections);
  $('connections-by-transport').textContent = Object.entries(snapshot.connections)
    .filter(([, n]) => n > 0)
    .map(([transport, n]) => `${transport} ${number.format(n)}`)
    .join(' · ');
  $('subscriptions').textContent = number.format(s.subscriptions);
  $('executions').textContent = number.format(s.executions);
  $('sources-open').textContent = number.format(s.sources);
  $('events-rate').textContent = rate(s.events);
  $('events-total').textContent = number.format(snapshot.totals.events) + ' in all';
  $('deliveries-rate').textContent = rate(s.deliveries);
  $('deliveries-total').textContent = number.format(snapshot.totals.deliveries) + ' in all';
  $('queued').textContent = number.format(snapshot.queued);
  const dropped = snapshot.totals.dropped;
  $('dropped-total').textContent = number.format(Object.values(dropped).reduce((a, b) => a + b, 0));
  $('dropped-by-reason').textContent = Object.entries(dropped)
    .map(([reason, n]) => `${reason.replace('_', ' ')} ${number.format(n)}`)
    .join(' · ');
  const closes = `slow consumers closed ${number.format(snapshot.totals.slow_consumer_closes)} · stalled closed ${number.format(snapshot.totals.stalled_closes)}`;
  $('refused').textContent =
    Object.entries(snapshot.totals.refused)
      .map(([reason, n]) => `${reason} ${number.format(n)}`)
      .join(' · ') + ' — ' + closes;
  rows($('brokers'), snapshot.brokers, (b) => [
    cell(b.name), cell(b.kind), health(b.connected, 'connected', 'down'),
    cell(number.format(b.sources)), cell(number.format(b.broker_subscriptions)), cell(number.format(b.events)),
  ], 'no brokers');
  rows($('upstreams'), snapshot.upstreams, (u) => [
    cell(u.name), health(u.healthy, 'reachable', 'failing'), cell(number.format(u.connections)), cell(number.format(u.sources)),
  ], 'none configured');
  rows($('sources'), snapshot.sources, (source) => [
    cell(`${source.origin} (${source.kind})`), cell(source.topic, 'topic'),
    cell(number.format(source.executions)), cell(number.format(source.subscribers)),
  ], 'no open sources');
  $('sources-unlisted').textContent = snapshot.sources_unlisted ? `${snapshot.sources_unlisted} more not listed` : '';
  if (first) fillBrokers(snapshot.brokers);
}

// ---- charts
function drawCharts() {
  drawChart($('chart-clients'), [samples.map((s) => s.connections), samples.map((s) => s.subscriptions)], number.format);
  drawChart($('chart-rates'), [samples.map((s) => s.events), samples.map((s) => s.deliveries)], rate);
}

function drawChart(canvas, series, label) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext('2d');
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const max = Math.max(1, ...series.flat());
  const styles = getComputedStyle(document.documentElement);
  const colors = [styles.getPropertyValue('--c1'), styles.getPropertyValue('--c2')];
  const [left, top, bottom] = [4, 14, height - 4];
  g.fillStyle = styles.getPropertyValue('--muted');
  g.font = '11px system-ui, sans-serif';
  g.fillText(label(max), left, 10);
  g.strokeStyle = styles.getPropertyValue('--line');
  g.beginPath();
  g.moveTo(left, bottom);
  g.lineTo(width, bottom);
  g.stroke();
  const step = (width - left) / (HISTORY - 1);
  series.forEach((values, i) => {
    g.strokeStyle = colors[i];
    g.lineWidth = 1.5;
    g.beginPath();
    const start = HISTORY - values.length;
    values.forEach((value, n) => {
      const x = left + (start + n) * step;
      const y = bottom - (value / max) * (bottom - top);
      if (n === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    });
    g.stroke();
  });
}
window.addEventListener('resize', drawCharts);

// ---- live tail
let tail = null;
const TAIL_QUERY =
  'subscription($topic: String!, $broker: String) { events(topic: $topic, broker: $broker) { topic broker id key timestamp payload } }';

function fillBrokers(brokers) {
  $('tail-broker').replaceChildren(
    ...brokers.map((broker) => {
      const option = document.createElement('option');
      option.value = broker.name;
      option.textContent = `${broker.name} (${broker.kind})`;
      option.selected = broker.name === hub.default_broker;
      return option;
    }),
  );
}

function stopTail(message) {
  if (tail) tail.close();
  tail = null;
  $('tail-stop').disabled = true;
  $('tail-status').textContent = message || '';
}

function showTailItem(className, meta, body) {
  const li = document.createElement('li');
  if (className) li.className = className;
  const head = document.createElement('div');
  head.className = 'meta';
  head.textContent = meta;
  const pre = document.createElement('pre');
  pre.textContent = body;
  li.append(head, pre);
  $('tail-events').prepend(li);
  while ($('tail-events').children.length > 100) $('tail-events').lastChild.remove();
}

$('tail-form').addEventListener('submit', (event) => {
  event.preventDefault();
  stopTail();
  if (hub && !hub.generic_api) {
    $('tail-status').textContent = 'this hub does not serve the built-in events subscription';
    return;
  }
  const variables = { topic: $('tail-topic').value.trim(), broker: $('tail-broker').value || null };
  const url = `/graphql?query=${encodeURIComponent(TAIL_QUERY)}&variables=${encodeURIComponent(JSON.stringify(variables))}`;
  tail = new EventSource(withToken(url));
  $('tail-stop').disabled = false;
  $('tail-status').textContent = `tailing ${variables.topic}…`;
  tail.addEventListener('next', (message) => {
    const result = JSON.parse(message.data);
    if (result.errors) {
      showTailItem('error', 'refused', result.errors.map((e) => e.message).join('\n'));
      return;
    }
    const e = result.data.events;
    const meta = [e.broker, e.topic, e.id && `id ${e.id}`, e.key && `key ${e.key}`, e.timestamp].filter(Boolean).join(' · ');
    showTailItem('', meta, JSON.stringify(e.payload, null, 2));
  });
  // The hub ends the stream after an error (or at shutdown); EventSource would reconnect.
  tail.addEventListener('complete', () => stopTail('ended'));
  tail.addEventListener('error', () => {
    if (tail && tail.readyState === EventSource.CLOSED) stopTail('the stream was refused');
  });
});
$('tail-stop').addEventListener('click', () => stopTail('stopped'));

connectStatus();
