// Package e2e holds capstan's end-to-end tests. They build the real binary
// once, run `capstan serve` as a child process on a free loopback port with a
// temporary data directory, talk to it with real clients (Go's net/http, the
// npm packages @segment/analytics-node and @rudderstack/rudder-sdk-node,
// analytics-next, @rudderstack/analytics-js and capstan.js in Debian's
// headless Chromium), kill it
// with SIGKILL and SIGTERM, and read the stored events back with
// `capstan events tail --json`.
//
// The npm packages and Debian's chromium are installed by
// scripts/setup-e2e.sh, which `make test` runs first:
//
//	scripts/setup-e2e.sh && go test -race ./e2e/
//
// With CAPSTAN_E2E_RACE=1 the capstan binary itself is built with the race
// detector, and a test fails when a server it ran reported a data race.
//
// The external-engine test runs only when a NATS server with JetStream
// answers at 127.0.0.1:4222; it shares that server's EVENTS stream, so it
// uses messageIds of its own and deletes nothing.
//
// This package has no non-test code besides this comment.
package e2e
