package e2e

// Helpers of the delivery tests (delivery_*_test.go): `capstan sandbox` as a
// child process and its /_sandbox/ API, capstan configurations with a
// LinkedIn destination pointing at it, and reading capstan's delivery state
// (/readyz, /metrics, capstan dlq).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testAdAccount is the ad account the delivery tests' sandboxes and
// configurations use (the sandbox's main account, renumbered by --ad-account).
const testAdAccount = 512345678

// signUpTrigger is the trigger of the delivery tests' mapping.
const signUpTrigger = `type = "track" and event = "Sign Up"`

// sandboxProc is one `capstan sandbox` child process.
type sandboxProc struct {
	t testing.TB
	// URL is the LinkedIn API's base URL, http://127.0.0.1:PORT.
	URL string

	cmd    *exec.Cmd
	log    *lineLog
	exited chan struct{}
	hc     *http.Client
}

// startSandbox runs `capstan sandbox --addr 127.0.0.1:0 --ad-account
// testAdAccount` with args added, waits for its first line, and kills it when
// the test ends.
func startSandbox(t testing.TB, args ...string) *sandboxProc {
	t.Helper()
	s := &sandboxProc{t: t, log: newLineLog(sandboxLine), exited: make(chan struct{}), hc: newHTTPClient(t)}
	all := append([]string{"sandbox", "--addr", "127.0.0.1:0", "--ad-account", strconv.Itoa(testAdAccount)}, args...)
	s.cmd = exec.Command(capstanBin, all...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start capstan sandbox: %v", err)
	}
	var waitErr error
	go func() {
		waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("capstan sandbox (pid %d) output:\n%s", s.cmd.Process.Pid, s.log.String())
		}
	})
	select {
	case m := <-s.log.match:
		s.URL = m[1]
		if m[2] != strconv.Itoa(testAdAccount) {
			t.Fatalf("capstan sandbox announced ad_account=%s, want %d: %s", m[2], testAdAccount, m[0])
		}
	case <-s.exited:
		t.Fatalf("capstan sandbox exited before listening (%v):\n%s", waitErr, s.log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("capstan sandbox printed no URL in 30s:\n%s", s.log.String())
	}
	return s
}

var sandboxLine = regexp.MustCompile(`^capstan sandbox: LinkedIn API at (http://\S+) ad_account=(\d+)`)

// do sends a request to the sandbox and returns the status and body.
func (s *sandboxProc) do(method, path, body string) (int, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		s.t.Fatalf("sandbox %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("sandbox %s %s: read answer: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// control calls the /_sandbox/ API and fails the test unless it answers 2xx.
func (s *sandboxProc) control(method, path, body string, into any) {
	s.t.Helper()
	status, b := s.do(method, path, body)
	if status < 200 || status > 299 {
		s.t.Fatalf("sandbox %s %s: status %d: %s", method, path, status, b)
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			s.t.Fatalf("sandbox %s %s: answer is not JSON (%v): %.300s", method, path, err, b)
		}
	}
}

// sandboxCounters is GET /_sandbox/counters.
type sandboxCounters struct {
	Requests           int64 `json:"requests"`
	ConversionRequests int64 `json:"conversion_requests"`
	Batches            int64 `json:"batches"`
	Accepted           int64 `json:"accepted"`
	Deduplicated       int64 `json:"deduplicated"`
	Evicted            int64 `json:"evicted"`
	RejectedEvents     int64 `json:"rejected_events"`
	RateLimited        int64 `json:"rate_limited"`
	Rejected           struct {
		Auth   int64 `json:"auth"`
		Schema int64 `json:"schema"`
	} `json:"rejected"`
}

func (s *sandboxProc) counters() sandboxCounters {
	s.t.Helper()
	var c sandboxCounters
	s.control(http.MethodGet, "/_sandbox/counters", "", &c)
	return c
}

// sandboxConversion is one element of GET /_sandbox/conversions: a
// conversion event body as LinkedIn accepted it.
type sandboxConversion struct {
	Conversion           string `json:"conversion"`
	ConversionHappenedAt int64  `json:"conversionHappenedAt"`
	EventID              string `json:"eventId"`
	User                 struct {
		UserIDs []struct {
			IDType  string `json:"idType"`
			IDValue string `json:"idValue"`
		} `json:"userIds"`
		UserInfo *struct {
			FirstName string `json:"firstName"`
			LastName  string `json:"lastName"`
		} `json:"userInfo"`
	} `json:"user"`
}

// userID returns the value of the conversion's user id of type idType ("" if
// none) and how many ids of that type it has.
func (c sandboxConversion) userID(idType string) (string, int) {
	var v string
	n := 0
	for _, id := range c.User.UserIDs {
		if id.IDType == idType {
			v = id.IDValue
			n++
		}
	}
	return v, n
}

// conversions returns every conversion the sandbox accepted (after eventId
// de-duplication), oldest first.
func (s *sandboxProc) conversions() []sandboxConversion {
	s.t.Helper()
	var out struct {
		Elements []sandboxConversion `json:"elements"`
	}
	s.control(http.MethodGet, "/_sandbox/conversions", "", &out)
	return out.Elements
}

// sandboxRecord is one element of GET /_sandbox/records.
type sandboxRecord struct {
	EventID     string `json:"event_id"`
	Token       string `json:"token"`
	DuplicateOf *int64 `json:"duplicate_of"`
}

func (s *sandboxProc) records() []sandboxRecord {
	s.t.Helper()
	var out struct {
		Elements []sandboxRecord `json:"elements"`
	}
	s.control(http.MethodGet, "/_sandbox/records", "", &out)
	return out.Elements
}

// sandboxTimedRecord is one element of GET /_sandbox/records with its
// order and arrival.
type sandboxTimedRecord struct {
	Seq         int64  `json:"seq"`
	EventID     string `json:"event_id"`
	ReceivedAt  int64  `json:"received_at"` // sandbox clock, ms
	BatchID     string `json:"batch_id"`
	DuplicateOf int64  `json:"duplicate_of"`
}

func (s *sandboxProc) timedRecords() []sandboxTimedRecord {
	s.t.Helper()
	var out struct {
		Elements []sandboxTimedRecord `json:"elements"`
	}
	s.control(http.MethodGet, "/_sandbox/records", "", &out)
	return out.Elements
}

// sandboxRequest is one element of GET /_sandbox/requests.
type sandboxRequest struct {
	Method   string `json:"method"`
	Path     string `json:"path"`
	Endpoint string `json:"endpoint"`
	Body     string `json:"body"`
	Status   int    `json:"status"`
}

func (s *sandboxProc) requests(endpoint string) []sandboxRequest {
	s.t.Helper()
	var out struct {
		Elements []sandboxRequest `json:"elements"`
	}
	s.control(http.MethodGet, "/_sandbox/requests?limit=1000&endpoint="+endpoint, "", &out)
	return out.Elements
}

// waitConversions polls the sandbox until it holds at least n conversions
// and returns them; it fails the test after timeout. why names the wait.
func (s *sandboxProc) waitConversions(n int, timeout time.Duration, why string) []sandboxConversion {
	s.t.Helper()
	var got []sandboxConversion
	if !poll(timeout, func() bool {
		got = s.conversions()
		return len(got) >= n
	}) {
		s.t.Fatalf("%s: the sandbox holds %d conversions after %s, want %d; counters %+v", why, len(got), timeout, n, s.counters())
	}
	return got
}

// byEventID indexes conversions by eventId and reports eventIds that occur
// more than once.
func byEventID(t testing.TB, convs []sandboxConversion) map[string]sandboxConversion {
	t.Helper()
	m := make(map[string]sandboxConversion, len(convs))
	dups := 0
	for _, c := range convs {
		if _, ok := m[c.EventID]; ok {
			if dups++; dups <= 10 {
				t.Errorf("eventId %q is in the sandbox more than once", c.EventID)
			}
		}
		m[c.EventID] = c
	}
	if dups > 0 {
		t.Errorf("%d conversions are duplicates of others", dups)
	}
	return m
}

// emailHash is LinkedIn's SHA256_EMAIL of an address: trimmed, lower-cased.
func emailHash(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:])
}

// lineLog collects a child's output and sends the submatches of the first
// line that matches re on match.
type lineLog struct {
	re      *regexp.Regexp
	mu      sync.Mutex
	buf     bytes.Buffer
	scanned int
	found   bool
	match   chan []string
}

func newLineLog(re *regexp.Regexp) *lineLog { return &lineLog{re: re, match: make(chan []string, 1)} }

func (b *lineLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	for !b.found {
		rest := b.buf.Bytes()[b.scanned:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		if m := b.re.FindStringSubmatch(string(rest[:i])); m != nil {
			b.found = true
			b.match <- m
		}
		b.scanned += i + 1
	}
	return len(p), nil
}

func (b *lineLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// linkedInDest describes the LinkedIn destination of a test configuration.
type linkedInDest struct {
	sandbox     *sandboxProc
	accessToken string
	// refreshToken, clientID and clientSecret enable OAuth refresh.
	refreshToken, clientID, clientSecret string
	// batchSize is the destination's batch_size (0: the default, 5000).
	batchSize int
	// fields is the mapping's `fields:` value as YAML flow text ("": none).
	fields string
}

// testSecretKey is the e2e configurations' server.secret_key: tokens kept
// at rest are encrypted, as in production.
const testSecretKey = "ZTJlLXRlc3Qta2V5LTMyLWJ5dGVzLWxvbmctLS0tLS0=" // "e2e-test-key-32-bytes-long------"

// writeDeliveryConfig writes dir/name: a capstan configuration for dataDir
// with the test source, admin_token (when not ""), and a LinkedIn
// destination whose one mapping turns "Sign Up" events into conversions of a
// rule that capstan creates. It returns the file's path.
func writeDeliveryConfig(t testing.TB, dir, name, dataDir, adminToken string, d linkedInDest) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "# written by capstan's e2e delivery tests\nserver:\n  addr: \"127.0.0.1:0\"\n  data_dir: %q\n  shutdown_grace: 20s\n", dataDir)
	fmt.Fprintf(&b, "  secret_key: %s\n", testSecretKey)
	if adminToken != "" {
		fmt.Fprintf(&b, "  admin_token: %q\n", adminToken)
	}
	fmt.Fprintf(&b, "engine:\n  sync: always\nsources:\n  - name: %s\n    write_key: %s\n    rate_limit: {disabled: true}\n", testSource, testWriteKey)
	fmt.Fprintf(&b, "destinations:\n  - name: linkedin\n    api_base: %q\n    ad_account: %d\n    linger: 200ms\n", d.sandbox.URL, testAdAccount)
	if d.batchSize > 0 {
		fmt.Fprintf(&b, "    batch_size: %d\n", d.batchSize)
	}
	fmt.Fprintf(&b, "    auth:\n      access_token: %q\n      token_url: %q\n", d.accessToken, d.sandbox.URL+"/oauth/v2/accessToken")
	if d.refreshToken != "" {
		fmt.Fprintf(&b, "      refresh_token: %q\n      client_id: %q\n      client_secret: %q\n", d.refreshToken, d.clientID, d.clientSecret)
	}
	fmt.Fprintf(&b, "    mappings:\n      - name: Sign Up\n        trigger: '%s'\n", signUpTrigger)
	b.WriteString("        conversion_rule: {create: {name: \"Sign Up (capstan)\", type: SIGN_UP}}\n")
	if d.fields != "" {
		fmt.Fprintf(&b, "        fields: %s\n", d.fields)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// signUp is a track "Sign Up" event with the given messageId, email (in
// context.traits) and li_fat_id (in properties); "" leaves either out.
func signUp(messageID, email, liFatID string) map[string]any {
	ev := map[string]any{
		"type":       "track",
		"event":      "Sign Up",
		"userId":     "user-" + messageID,
		"messageId":  messageID,
		"timestamp":  time.Now().UTC().Format(time.RFC3339Nano),
		"properties": map[string]any{"plan": "pro"},
	}
	if email != "" {
		ev["context"] = map[string]any{"traits": map[string]any{"email": email}}
	}
	if liFatID != "" {
		ev["properties"].(map[string]any)["li_fat_id"] = liFatID
	}
	return ev
}

// sendEvents posts events to srv's /v1/batch in requests of up to 100 and
// fails the test unless every request is answered 200 with every event
// accepted.
func sendEvents(t testing.TB, hc *http.Client, url string, events []map[string]any) {
	t.Helper()
	for chunk := range slices.Chunk(events, 100) {
		body := marshal(map[string]any{"batch": chunk})
		status, ans, err := post(context.Background(), hc, url, "/v1/batch", body)
		if err != nil || status != http.StatusOK || !ans.Success || ans.Dropped > 0 || ans.Duplicates > 0 {
			t.Fatalf("POST /v1/batch with %d events: status %d %+v %v", len(chunk), status, ans, err)
		}
	}
}

// readiness is capstan's /readyz answer.
type readiness struct {
	HTTPStatus   int    `json:"-"`
	Status       string `json:"status"`
	Engine       string `json:"engine"`
	Destinations []struct {
		Destination string `json:"destination"`
		State       string `json:"state"`
		Reason      string `json:"reason"`
	} `json:"destinations"`
}

// destination returns the state and reason of destination name ("", "" when
// /readyz does not list it).
func (r readiness) destination(name string) (state, reason string) {
	for _, d := range r.Destinations {
		if d.Destination == name {
			return d.State, d.Reason
		}
	}
	return "", ""
}

func readyz(t testing.TB, hc *http.Client, url string) readiness {
	t.Helper()
	resp, err := hc.Get(url + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	var r readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("GET /readyz: answer %d is not JSON: %v", resp.StatusCode, err)
	}
	r.HTTPStatus = resp.StatusCode
	return r
}

// metricValue returns the value of the Prometheus sample name{labels} (labels as
// written by the Go client, sorted: `destination="linkedin",outcome="received"`)
// on srv's /metrics, 0 when absent.
func metricValue(t testing.TB, hc *http.Client, url, name, labels string) float64 {
	t.Helper()
	resp, err := hc.Get(url + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	want := name + "{" + labels + "} "
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s{%s}: %q is not a number", name, labels, v)
			}
			return f
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	return 0
}

// deliveryEvents returns capstan_delivery_events_total of the linkedin
// destination for outcome.
func deliveryEvents(t testing.TB, hc *http.Client, url, outcome string) int {
	t.Helper()
	return int(metricValue(t, hc, url, "capstan_delivery_events_total", `destination="linkedin",outcome="`+outcome+`"`))
}

// waitProcessed polls srv's delivery metrics until the linkedin destination
// has received n events and settled each conversion (delivered or dead-
// lettered) and each other event (not matched); it fails the test after
// timeout. A fresh server's counters start at zero.
func waitProcessed(t testing.TB, hc *http.Client, url string, received, delivered, deadLettered int, timeout time.Duration) {
	t.Helper()
	var got [4]int
	if !poll(timeout, func() bool {
		got = [4]int{deliveryEvents(t, hc, url, "received"), deliveryEvents(t, hc, url, "delivered"),
			deliveryEvents(t, hc, url, "dead_lettered"), deliveryEvents(t, hc, url, "not_matched")}
		return got[0] >= received && got[1] >= delivered && got[2] >= deadLettered && got[1]+got[2]+got[3] >= received
	}) {
		t.Fatalf("after %s capstan received %d events, delivered %d, dead-lettered %d, matched nothing for %d; want %d received, %d delivered, %d dead-lettered",
			timeout, got[0], got[1], got[2], got[3], received, delivered, deadLettered)
	}
}

// runDLQ runs `capstan dlq ARGS --config cfg` and returns its stdout; it fails
// the test unless the command exits 0.
func runDLQ(t testing.TB, cfg string, args ...string) string {
	t.Helper()
	all := append([]string{"dlq"}, args...)
	all = append(all, "--config", cfg)
	code, stdout, stderr := runCapstan(t, filepath.Dir(cfg), nil, 60*time.Second, all...)
	if code != 0 {
		t.Fatalf("capstan %s: exit %d:\n%s%s", strings.Join(all, " "), code, stdout, stderr)
	}
	return stdout
}

// deadLetter is one document of `capstan dlq show`.
type deadLetter struct {
	Seq         uint64          `json:"seq"`
	Destination string          `json:"destination"`
	Mapping     string          `json:"mapping"`
	Reason      string          `json:"reason"`
	Status      int             `json:"status"`
	Message     string          `json:"message"`
	MessageID   string          `json:"messageId"`
	Payload     json.RawMessage `json:"payload"`
}

// dlqShow returns the dead letters `capstan dlq show` prints for args.
func dlqShow(t testing.TB, cfg string, args ...string) []deadLetter {
	t.Helper()
	out := runDLQ(t, cfg, append([]string{"show"}, args...)...)
	var dls []deadLetter
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var dl deadLetter
		if err := dec.Decode(&dl); err != nil {
			t.Fatalf("capstan dlq show printed something that is not JSON (%v):\n%s", err, out)
		}
		dls = append(dls, dl)
	}
	return dls
}
