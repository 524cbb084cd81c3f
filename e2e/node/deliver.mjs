// deliver.mjs sends a mix of Segment calls to capstan with the real
// @segment/analytics-node, for the delivery test (delivery_node_test.go):
// track "Sign Up" events carrying a LinkedIn click id (properties.li_fat_id or
// ?li_fat_id= in context.page.url) and/or an email (context.traits.email,
// written with odd case and spaces), track events that no trigger matches,
// identify calls and page calls. It prints, as one JSON document on stdout,
// every event exactly as the library put it on the wire and every response
// status, so that the Go test can work out which conversions LinkedIn must
// receive.
//
// Usage: node deliver.mjs --host http://127.0.0.1:PORT --write-key KEY --run RUNID [--tracks N]
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
    tracks: { type: 'string', default: '200' },
  },
})
for (const name of ['host', 'write-key', 'run']) {
  if (!args[name]) {
    console.error(`deliver.mjs: --${name} is required`)
    process.exit(2)
  }
}
const run = args.run
const tracks = Number.parseInt(args.tracks, 10)
const version = createRequire(import.meta.url)('@segment/analytics-node/package.json').version

const events = []
const responses = []
const errors = []

const analytics = new Analytics({
  writeKey: args['write-key'],
  host: args.host,
  flushAt: 25,
  flushInterval: 60000, // flushes happen by count or closeAndFlush, never by timer
  maxRetries: 0, // a failure must show, not be retried away
  httpRequestTimeout: 10000,
})
analytics.on('http_request', (r) => {
  for (const ev of JSON.parse(r.body).batch) events.push(ev)
})
analytics.on('http_response', (r) => responses.push({ url: r.url, status: r.status }))
analytics.on('error', (err) => errors.push(String(err?.reason ?? err?.message ?? err)))

function called(label) {
  return (err) => {
    if (err) errors.push(`${label}: ${err.message ?? err}`)
  }
}

for (let i = 0; i < tracks; i++) {
  const userId = `user-${run}-${i}`
  const email = ` User.${i}@Example.COM ` // normalised to user.N@example.com before hashing
  switch (i % 5) {
    case 0: // click id in the properties only
      analytics.track(
        { userId, event: 'Sign Up', properties: { li_fat_id: `lfi-${run}-${i}`, plan: 'pro' } },
        called(`track ${i}`),
      )
      break
    case 1: // email only
      analytics.track(
        { userId, event: 'Sign Up', properties: { plan: 'free' }, context: { traits: { email } } },
        called(`track ${i}`),
      )
      break
    case 2: // both; the click id on the page URL
      analytics.track(
        {
          userId,
          event: 'Sign Up',
          properties: { plan: 'team' },
          context: {
            traits: { email },
            page: { url: `https://www.example.com/signup?utm_source=linkedin&li_fat_id=url-${run}-${i}`, path: '/signup' },
          },
        },
        called(`track ${i}`),
      )
      break
    case 3: // another event, with identifiers: no trigger matches it
      analytics.track(
        { userId, event: 'Order Completed', properties: { li_fat_id: `lfi-${run}-${i}`, revenue: 10, currency: 'EUR' }, context: { traits: { email } } },
        called(`track ${i}`),
      )
      break
    default: // a near miss of the trigger's event name
      analytics.track({ userId, event: 'Sign Up Started', properties: { li_fat_id: `lfi-${run}-${i}` } }, called(`track ${i}`))
  }
  if (i % 10 === 0) {
    analytics.identify({ userId, traits: { email, firstName: 'Ann', lastName: 'Lee' } }, called(`identify ${i}`))
    analytics.page(
      { anonymousId: `anon-${run}-${i}`, name: 'Pricing', properties: { url: `https://www.example.com/pricing?li_fat_id=page-${run}-${i}` } },
      called(`page ${i}`),
    )
  }
}

await analytics.closeAndFlush({ timeout: 30000 })

process.stdout.write(JSON.stringify({ version, events, responses, errors }) + '\n')
const bad = responses.filter((r) => r.status < 200 || r.status > 299)
if (errors.length > 0 || bad.length > 0) {
  console.error(`deliver.mjs: ${errors.length} errors, ${bad.length} non-2xx answers: ${JSON.stringify({ errors, bad })}`)
  process.exit(1)
}
