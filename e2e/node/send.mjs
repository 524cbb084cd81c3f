// send.mjs sends Segment calls to capstan with the real @segment/analytics-node
// and prints, as one JSON document on stdout, every HTTP request the library
// made (URL, headers, parsed body) and every response status, so that the Go
// test (analyticsnode_test.go) can compare what is stored with exactly what
// the library sent.
//
// Usage: node send.mjs --host http://127.0.0.1:PORT --write-key KEY --run RUNID
//
// It exits 1 if the library reports an error or an answer is not 2xx.
import { parseArgs } from 'node:util'
import { createRequire } from 'node:module'
import { Analytics } from '@segment/analytics-node'

const { values: args } = parseArgs({
  options: {
    host: { type: 'string' },
    'write-key': { type: 'string' },
    run: { type: 'string' },
  },
})
for (const name of ['host', 'write-key', 'run']) {
  if (!args[name]) {
    console.error(`send.mjs: --${name} is required`)
    process.exit(2)
  }
}
const run = args.run
const version = createRequire(import.meta.url)('@segment/analytics-node/package.json').version

const requests = []
const responses = []
const errors = []

function newClient(flushAt) {
  const a = new Analytics({
    writeKey: args['write-key'],
    host: args.host,
    flushAt,
    flushInterval: 60000, // flushes happen by count or closeAndFlush, never by timer
    maxRetries: 0, // a failure must show, not be retried away
    httpRequestTimeout: 10000,
  })
  a.on('http_request', (r) => {
    const headers = { ...r.headers }
    requests.push({ url: r.url, method: r.method, headers, body: JSON.parse(r.body) })
  })
  a.on('http_response', (r) => responses.push({ url: r.url, status: r.status }))
  a.on('error', (err) => errors.push(String(err?.reason ?? err?.message ?? err)))
  return a
}

// Each call's callback reports delivery of that event.
function called(label) {
  return (err) => {
    if (err) errors.push(`${label}: ${err.message ?? err}`)
  }
}

// One event per request: the five non-track types and a track.
const single = newClient(1)
const userId = `user-${run}`
const anonId = `anon-${run}`
single.track(
  {
    userId,
    event: 'Order Completed',
    properties: {
      zeta: 'last-but-first', // key order must survive: not alphabetical
      revenue: 49.9,
      currency: 'EUR',
      products: [
        { product_id: 'p-1', sku: 'SKU-1', price: 19.95, quantity: 2, tags: ['a', 'b'] },
        { product_id: 'p-2', price: 9.99, quantity: 1, meta: { nested: { deep: [1, 2, { x: null }] } } },
      ],
      unicode: 'Zürich – 東京 – emoji 🎉 – "quoted" \\ back',
      empty: {},
      nothing: null,
      flag: false,
      big: 12345678901234,
      alpha: 'first-but-last',
    },
    context: { traits: { email: 'ann@example.com' }, ip: '203.0.113.7' },
  },
  called('track'),
)
single.page(
  {
    anonymousId: anonId,
    category: 'Docs',
    name: 'Pricing',
    properties: { url: 'https://www.example.com/pricing?li_fat_id=abc', path: '/pricing', search: '?li_fat_id=abc', referrer: '', title: 'Pricing' },
  },
  called('page'),
)
single.identify(
  {
    userId,
    anonymousId: anonId,
    traits: { email: 'ann@example.com', firstName: 'Ann', lastName: 'Lee', company: { name: 'Acme Inc', employee_count: 50 }, title: 'Engineer' },
  },
  called('identify'),
)
single.group(
  { userId, groupId: `org-${run}`, traits: { name: 'Acme Corporation', industry: 'Technology', employees: 500 } },
  called('group'),
)
single.alias({ userId, previousId: anonId }, called('alias'))

// Several events in one request: flushAt 4 sends the first four together;
// closeAndFlush sends the last two together.
const batched = newClient(4)
for (let i = 0; i < 6; i++) {
  batched.track(
    { anonymousId: anonId, event: `Batch Event ${i}`, properties: { index: i, list: [i, `${i}`], obj: { b: i, a: -i } } },
    called(`batch ${i}`),
  )
}

await Promise.all([single.closeAndFlush({ timeout: 20000 }), batched.closeAndFlush({ timeout: 20000 })])

process.stdout.write(JSON.stringify({ version, requests, responses, errors }) + '\n')
const bad = responses.filter((r) => r.status < 200 || r.status > 299)
if (errors.length > 0 || bad.length > 0) {
  console.error(`send.mjs: ${errors.length} errors, ${bad.length} non-2xx answers: ${JSON.stringify({ errors, bad })}`)
  process.exit(1)
}
