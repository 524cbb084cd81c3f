// rudder.mjs sends calls to capstan with the real @rudderstack/rudder-sdk-node,
// unmodified, for the RudderStack test (rudder_test.go): an identify, a page,
// a track, an alias and a group for one user of its own, then a track
// "Sign Up" naming each --convert user by userId only, as a back end does
// when a CRM stage changes. It prints, as one JSON document on stdout, the
// library's version, every event exactly as the library put it on the wire
// (its requests are gzipped; they are recorded through an axios interceptor
// before they leave) and every response status.
//
// Usage: node rudder.mjs --host http://127.0.0.1:PORT --write-key KEY --run RUNID [--convert USERID]...
//
// It exits 1 if the library reports an error or an answer is not 2xx.
import { parseArgs } from 'node:util'
import { createRequire } from 'node:module'
import { gunzipSync } from 'node:zlib'
import axios from 'axios'
import Analytics from '@rudderstack/rudder-sdk-node'

const { values: args } = parseArgs({
  options: {
    host: { type: 'string' },
    'write-key': { type: 'string' },
    run: { type: 'string' },
    convert: { type: 'string', multiple: true, default: [] },
  },
})
for (const name of ['host', 'write-key', 'run']) {
  if (!args[name]) {
    console.error(`rudder.mjs: --${name} is required`)
    process.exit(2)
  }
}
const require = createRequire(import.meta.url)
const version = require('@rudderstack/rudder-sdk-node/package.json').version

const events = []
const responses = []
const errors = []

// The library's own axios client, with interceptors that record what it
// sends and what capstan answers.
const axiosInstance = axios.create()
axiosInstance.interceptors.request.use((config) => {
  let body = config.data
  if (Buffer.isBuffer(body) || body instanceof Uint8Array) body = gunzipSync(body).toString('utf8')
  if (typeof body === 'string') body = JSON.parse(body)
  for (const ev of body.batch) events.push(ev)
  return config
})
axiosInstance.interceptors.response.use(
  (res) => {
    responses.push({ url: res.config.url, status: res.status })
    return res
  },
  (err) => {
    responses.push({ url: err.config?.url, status: err.response?.status ?? 0 })
    return Promise.reject(err)
  },
)

const analytics = new Analytics(args['write-key'], {
  dataPlaneUrl: args.host,
  axiosInstance,
  flushAt: 100,
  flushInterval: 60000, // flushed at the end, never by timer
  retryCount: 0, // a failure must show, not be retried away
  logLevel: 'error',
})

function called(label) {
  return (err) => {
    if (err) errors.push(`${label}: ${err.message ?? err}`)
  }
}

const run = args.run
const userId = `rs-node-${run}`
analytics.identify({ userId, traits: { email: `node.${run}@example.com`, plan: 'team' } }, called('identify'))
analytics.page({ userId, name: 'Pricing', properties: { url: `https://www.example.com/pricing?run=${run}` } }, called('page'))
analytics.track({ userId, event: 'Invoice Paid', properties: { revenue: 49.9, currency: 'EUR' } }, called('track'))
analytics.alias({ previousId: `rs-old-${run}`, userId }, called('alias'))
analytics.group({ userId, groupId: `rs-group-${run}`, traits: { name: 'Acme' } }, called('group'))
for (const id of args.convert) {
  analytics.track({ userId: id, event: 'Sign Up', properties: { plan: 'pro' } }, called(`track Sign Up ${id}`))
}

try {
  await analytics.flush()
} catch (err) {
  errors.push(`flush: ${err?.message ?? err}`)
}

const bad = responses.filter((r) => r.status < 200 || r.status > 299)
console.log(JSON.stringify({ version, events, responses }))
if (errors.length > 0 || bad.length > 0 || responses.length === 0) {
  console.error(`rudder.mjs: errors ${JSON.stringify(errors)}, non-2xx answers ${JSON.stringify(bad)}, ${responses.length} answers`)
  process.exit(1)
}
