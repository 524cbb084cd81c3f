package mapping

import (
	"strings"
	"testing"

	"github.com/capstan-gw/capstan/internal/event"
)

// The stored events of spec §2.4.
const (
	trackSignUp = `{"type":"track","event":"Sign Up","anonymousId":"3f0b0c3e-9c1d-4f1e-a1e7-6f2f9b1d2c44","userId":null,
 "properties":{"firstName":"John","lastName":"Doe","title":"Engineer","company":"Acme Inc","countryCode":"US","li_fat_id":"123456"},
 "context":{"page":{"url":"https://www.example.com/signup?li_fat_id=123456","search":"?li_fat_id=123456","path":"/signup","referrer":"","title":"Sign up"}}}`
	pageHome = `{"type":"page","name":"Home Page","category":"Page View","anonymousId":"3f0b0c3e-9c1d-4f1e-a1e7-6f2f9b1d2c44",
 "properties":{"name":"Home Page","category":"Page View","url":"https://www.example.com/?li_fat_id=123456","path":"/","search":"?li_fat_id=123456","referrer":"","title":"Home"}}`
	identifyUser = `{"type":"identify","userId":"user_12345","traits":{"email":"john.doe@example.com","firstName":"John","lastName":"Doe","title":"Engineer","company":{"name":"Acme Inc"}}}`
)

func mustParse(t testing.TB, s string) event.Value {
	t.Helper()
	v, err := event.ParseString(s)
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return v
}

// TestTriggerExamples is the evaluation table of spec §4.6.
func TestTriggerExamples(t *testing.T) {
	events := []struct{ name, json string }{{"track", trackSignUp}, {"page", pageHome}, {"identify", identifyUser}}
	tests := []struct {
		trigger string
		want    [3]bool // track "Sign Up", page "Home Page", identify
	}{
		{`type = "track"`, [3]bool{true, false, false}},
		{`type = "track" and event = "Sign Up"`, [3]bool{true, false, false}},
		{`event != "Sign Up"`, [3]bool{false, true, true}},
		{`type = "page" and match(properties.url, "https://www.example.com/*")`, [3]bool{false, true, false}},
		{`match(context.page.url, "https://www.example.com/*")`, [3]bool{true, false, false}},
		{`properties.li_fat_id != null`, [3]bool{true, false, false}},
		{`!contains(properties.li_fat_id, "999")`, [3]bool{true, false, false}},
		{`traits.email != null`, [3]bool{false, false, true}},
		{`type = "track" and (event = "Sign Up" or event = "Order Completed")`, [3]bool{true, false, false}},
		// The two triggers of the LinkedIn onboarding set-up.
		{`type = "track" and match(context.page.url, "https://www.example.com/*")`, [3]bool{true, false, false}},
	}
	for _, tt := range tests {
		tr, err := ParseTrigger(tt.trigger)
		if err != nil {
			t.Fatalf("ParseTrigger(%q): %v", tt.trigger, err)
		}
		for i, ev := range events {
			t.Run(tt.trigger+"/"+ev.name, func(t *testing.T) {
				if got := tr.Match(mustParse(t, ev.json)); got != tt.want[i] {
					t.Errorf("got %v, want %v", got, tt.want[i])
				}
			})
		}
	}
	revenue := MustParseTrigger(`properties.revenue >= 10`)
	for _, tt := range []struct {
		name, event string
		want        bool
	}{
		{"string revenue", `{"properties":{"revenue":"49.9"}}`, false},
		{"number revenue", `{"properties":{"revenue":49.9}}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := revenue.Match(mustParse(t, tt.event)); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTriggerOperators covers every operator and literal kind of spec §4.4.
func TestTriggerOperators(t *testing.T) {
	tests := []struct {
		name    string
		trigger string
		event   string
		want    bool
	}{
		// string equals / not-equals
		{"str eq", `properties.plan = "pro"`, `{"properties":{"plan":"pro"}}`, true},
		{"str eq case-sensitive", `properties.plan = "pro"`, `{"properties":{"plan":"Pro"}}`, false},
		{"str eq number is not string", `properties.n = "5"`, `{"properties":{"n":5}}`, false},
		{"str eq absent", `properties.plan = "pro"`, `{}`, false},
		{"str ne other", `properties.plan != "pro"`, `{"properties":{"plan":"free"}}`, true},
		{"str ne same", `properties.plan != "pro"`, `{"properties":{"plan":"pro"}}`, false},
		{"str ne absent", `properties.plan != "pro"`, `{}`, true},
		{"str ne null", `properties.plan != "pro"`, `{"properties":{"plan":null}}`, true},
		{"str ne number", `properties.plan != "5"`, `{"properties":{"plan":5}}`, true},
		{"str ne bool", `properties.plan != "true"`, `{"properties":{"plan":true}}`, true},
		{"single quotes", `properties.q = 'say "hi"'`, `{"properties":{"q":"say \"hi\""}}`, true},
		{"star is literal in =", `properties.q = "a*"`, `{"properties":{"q":"a*"}}`, true},
		// number equals / not-equals
		{"num eq", `properties.quantity = 3`, `{"properties":{"quantity":3}}`, true},
		{"num eq other text", `properties.quantity = 3`, `{"properties":{"quantity":3.0}}`, true},
		{"num eq string", `properties.quantity = 3`, `{"properties":{"quantity":"3"}}`, false},
		{"num eq negative decimal", `properties.x = -2.5`, `{"properties":{"x":-2.5}}`, true},
		{"num eq plus sign", `properties.x = +2`, `{"properties":{"x":2}}`, true},
		{"num ne other", `properties.quantity != 3`, `{"properties":{"quantity":4}}`, true},
		{"num ne same", `properties.quantity != 3`, `{"properties":{"quantity":3}}`, false},
		{"num ne absent", `properties.quantity != 3`, `{}`, false},
		{"num ne string", `properties.quantity != 3`, `{"properties":{"quantity":"4"}}`, false},
		{"num eq userId", `userId = 42`, `{"userId":42}`, true},
		// ordering
		{"gt true", `properties.revenue > 100`, `{"properties":{"revenue":100.5}}`, true},
		{"gt equal", `properties.revenue > 100`, `{"properties":{"revenue":100}}`, false},
		{"gt string", `properties.revenue > 100`, `{"properties":{"revenue":"1000"}}`, false},
		{"gt absent", `properties.revenue > 100`, `{}`, false},
		{"ge equal", `properties.revenue >= 100`, `{"properties":{"revenue":100}}`, true},
		{"lt true", `properties.revenue < 100`, `{"properties":{"revenue":-1}}`, true},
		{"lt equal", `properties.revenue < 100`, `{"properties":{"revenue":100}}`, false},
		{"le equal", `properties.revenue <= 100`, `{"properties":{"revenue":1e2}}`, true},
		{"le bigger", `properties.revenue <= 100`, `{"properties":{"revenue":100.01}}`, false},
		{"ordering on text field", `event > 1`, `{"event":"2"}`, false},
		// booleans
		{"is true", `properties.trial = true`, `{"properties":{"trial":true}}`, true},
		{"is true string", `properties.trial = true`, `{"properties":{"trial":"true"}}`, false},
		{"is true false", `properties.trial = true`, `{"properties":{"trial":false}}`, false},
		{"is false", `properties.trial = false`, `{"properties":{"trial":false}}`, true},
		{"is false absent", `properties.trial = false`, `{}`, false},
		{"is false null", `properties.trial = false`, `{"properties":{"trial":null}}`, false},
		{"userId is true", `userId = true`, `{"userId":true}`, true},
		// null
		{"eq null absent", `traits.email = null`, `{}`, true},
		{"eq null null", `traits.email = null`, `{"traits":{"email":null}}`, true},
		{"eq null empty", `traits.email = null`, `{"traits":{"email":""}}`, false},
		{"ne null empty string", `properties.x != null`, `{"properties":{"x":""}}`, true},
		{"ne null zero", `properties.x != null`, `{"properties":{"x":0}}`, true},
		{"ne null false", `properties.x != null`, `{"properties":{"x":false}}`, true},
		{"ne null empty object", `properties.x != null`, `{"properties":{"x":{}}}`, true},
		{"ne null null", `properties.x != null`, `{"properties":{"x":null}}`, false},
		{"ne null absent", `properties.x != null`, `{}`, false},
		{"userId exists", `userId != null`, `{"userId":"u1"}`, true},
		{"userId null", `userId != null`, `{"userId":null}`, false},
		{"type eq null", `type = null`, `{}`, true},
		{"event ne null", `event != null`, `{"event":"x"}`, true},
		// contains
		{"contains", `contains(event, "Order")`, `{"event":"Order Completed"}`, true},
		{"contains case-sensitive", `contains(event, "order")`, `{"event":"Order Completed"}`, false},
		{"contains absent", `contains(event, "Order")`, `{}`, false},
		{"contains number", `contains(properties.n, "1")`, `{"properties":{"n":12}}`, false},
		{"contains number literal", `contains(properties.s, 12)`, `{"properties":{"s":"a12b"}}`, true},
		{"not contains", `!contains(event, "Order")`, `{"event":"Sign Up"}`, true},
		{"not contains present", `!contains(event, "Order")`, `{"event":"Order"}`, false},
		{"not contains absent", `!contains(event, "Order")`, `{}`, false},
		{"not contains number", `!contains(properties.n, "1")`, `{"properties":{"n":5}}`, false},
		{"not contains spaced bang", `! contains(event, "Order")`, `{"event":"Sign Up"}`, true},
		// match
		{"starts with", `match(context.page.url, "https://www.example.com/*")`, `{"context":{"page":{"url":"https://www.example.com/a"}}}`, true},
		{"starts with no", `match(context.page.url, "https://www.example.com/*")`, `{"context":{"page":{"url":"http://www.example.com/a"}}}`, false},
		{"ends with", `match(context.page.url, "*/thanks")`, `{"context":{"page":{"url":"https://x/thanks"}}}`, true},
		{"ends with no", `match(context.page.url, "*/thanks")`, `{"context":{"page":{"url":"https://x/thanks/"}}}`, false},
		{"inner star literal", `match(properties.s, "a*b*")`, `{"properties":{"s":"a*bc"}}`, true},
		{"inner star not glob", `match(properties.s, "a*b*")`, `{"properties":{"s":"axbc"}}`, false},
		{"both stars: trailing wins", `match(properties.s, "*ab*")`, `{"properties":{"s":"*abc"}}`, true},
		{"both stars prefix only", `match(properties.s, "*ab*")`, `{"properties":{"s":"xabc"}}`, false},
		{"star alone", `match(properties.s, "*")`, `{"properties":{"s":""}}`, true},
		{"match absent", `match(properties.s, "a*")`, `{}`, false},
		{"not starts with", `!match(context.page.url, "https://*")`, `{"context":{"page":{"url":"http://x"}}}`, true},
		{"not starts with present", `!match(context.page.url, "https://*")`, `{"context":{"page":{"url":"https://x"}}}`, false},
		{"not starts with absent", `!match(context.page.url, "https://*")`, `{}`, false},
		{"not ends with", `!match(context.page.url, "*/thanks")`, `{"context":{"page":{"url":"https://x/"}}}`, true},
		{"not ends with absent", `!match(context.page.url, "*/thanks")`, `{}`, false},
		// type, event, name compare number and boolean literals as text
		{"event number literal", `event = 5`, `{"event":"5"}`, true},
		{"event number literal vs number", `event = 5`, `{"event":5}`, false},
		{"event number literal text form", `event = 5.0`, `{"event":"5"}`, true},
		{"event ne number literal", `event != 5`, `{"event":"6"}`, true},
		{"event bool literal", `event = true`, `{"event":"true"}`, true},
		{"name bool literal vs bool", `name = false`, `{"name":false}`, false},
		{"name", `name = "Pricing"`, `{"type":"page","name":"Pricing"}`, true},
		// fields and paths
		{"properties on any type", `properties.plan = "pro"`, `{"type":"identify","properties":{"plan":"pro"}}`, true},
		{"traits", `traits.email != null`, `{"traits":{"email":"a@b"}}`, true},
		{"context traits", `context.traits.email != null`, `{"context":{"traits":{"email":"a@b"}}}`, true},
		{"path through string is absent", `properties.name.length = 4`, `{"properties":{"name":"John"}}`, false},
		{"path through number is absent", `properties.a.b = null`, `{"properties":{"a":0}}`, true},
		{"dash and underscore", `properties.li_fat-id = "x"`, `{"properties":{"li_fat-id":"x"}}`, true},
		{"non-object event", `properties.a = null`, `[1,2]`, true},
		// groups
		{"and all true", `type = "track" and event = "A" and properties.x = 1`, `{"type":"track","event":"A","properties":{"x":1}}`, true},
		{"and one false", `type = "track" and event = "A" and properties.x = 1`, `{"type":"track","event":"A","properties":{"x":2}}`, false},
		{"or one true", `event = "A" or event = "B" or event = "C"`, `{"event":"C"}`, true},
		{"or none", `event = "A" or event = "B"`, `{"event":"D"}`, false},
		{"or of ands", `(type = "track" and event = "A") or (type = "page" and name = "B")`, `{"type":"page","name":"B"}`, true},
		{"deep parens", `((((type = "track"))))`, `{"type":"track"}`, true},
		{"nested three levels", `type = "track" and (event = "A" or (event = "B" and (properties.x = 1 or properties.y = 2)))`, `{"type":"track","event":"B","properties":{"y":2}}`, true},
		{"nested three levels false", `type = "track" and (event = "A" or (event = "B" and (properties.x = 1 or properties.y = 2)))`, `{"type":"track","event":"B","properties":{"y":3}}`, false},
		{"tight spacing", `type="track"and(event!="A")`, `{"type":"track","event":"B"}`, true},
		{"newlines and tabs", "type = \"track\"\n\tand\r\nevent = \"A\"", `{"type":"track","event":"A"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := ParseTrigger(tt.trigger)
			if err != nil {
				t.Fatalf("ParseTrigger(%q): %v", tt.trigger, err)
			}
			if got := tr.Match(mustParse(t, tt.event)); got != tt.want {
				t.Errorf("%s on %s: got %v, want %v", tt.trigger, tt.event, got, tt.want)
			}
		})
	}
}

// TestTriggerErrors covers the save-time errors of spec §4.2 and the lexer.
func TestTriggerErrors(t *testing.T) {
	tests := []struct {
		name    string
		trigger string
		line    int
		column  int
		msg     string // fragment
	}{
		{"mixed and/or", `type = "track" and event = "A" or event = "B"`, 1, 32, `mixed "and" and "or" at one level; add parentheses`},
		{"mixed or/and", `event = "A" or event = "B" and type = "track"`, 1, 28, `mixed "and" and "or"`},
		{"mixed inside parens", `type = "track" and (event = "A" or event = "B" and name = "C")`, 1, 48, `mixed`},
		{"unsupported field", `anonymousId != null`, 1, 1, `unsupported field "anonymousId"`},
		{"unsupported field hint", `messageId = "x"`, 1, 1, `supported fields are type, event, name, userId`},
		{"sub-field of type", `type.x = "a"`, 1, 1, `unsupported field "type.x"`},
		{"ordering with string", `properties.price < "10"`, 1, 20, `< needs a number literal`},
		{"ordering with bool", `properties.price >= true`, 1, 21, `>= needs a number literal`},
		{"ordering with null", `properties.price > null`, 1, 20, `> needs a number literal`},
		{"ne true", `properties.flag != true`, 1, 17, `!= with a boolean literal is not supported; write properties.flag = false`},
		{"ne false", `properties.flag != false`, 1, 17, `write properties.flag = true`},
		{"ne bool on event", `event != true`, 1, 7, `event != "true"`},
		{"match without star", `match(event, "Sign")`, 1, 14, `match pattern must start or end with *`},
		{"match number", `match(event, 5)`, 1, 14, `match pattern must start or end with *`},
		{"bang on group", `!(type = "page")`, 1, 1, `"!" only negates contains() or match()`},
		{"bang on comparison", `!type = "page"`, 1, 1, `only negates contains() or match()`},
		{"properties alone", `properties = "x"`, 1, 1, `a path is required after properties.`},
		{"traits alone", `traits != null`, 1, 1, `a path is required after traits.`},
		{"context dot", `context. = "x"`, 1, 1, `a path is required after context.`},
		{"context alone in call", `contains(context, "x")`, 1, 10, `a path is required after context.`},
		{"empty segment", `properties..x = 1`, 1, 12, `empty property name`},
		{"digit segment", `properties.items.0 = 1`, 1, 18, `must start with a letter`},
		{"brackets", `properties.items[0].sku = "a"`, 1, 17, `"[" is not allowed in a field name`},
		{"dollar path", `$.properties.x = 1`, 1, 1, `write fields without "$."`},
		{"unbalanced open", `(type = "track"`, 1, 1, `unbalanced "("`},
		{"unbalanced close", `type = "track")`, 1, 15, `unbalanced ")"`},
		{"empty parens", `()`, 1, 2, `empty parentheses`},
		{"unterminated string", `event = "Sign Up`, 1, 9, `unterminated string`},
		{"unterminated single", `event = 'Sign Up`, 1, 9, `unterminated string`},
		{"stray token", `type = "track" "page"`, 1, 16, `unexpected string "page"`},
		{"stray word", `type = "track" event = "A"`, 1, 16, `join conditions with "and" or "or"`},
		{"empty", ``, 1, 1, `the trigger is empty`},
		{"blank", "  \t", 1, 4, `the trigger is empty`},
		{"trailing and", `type = "track" and`, 1, 19, `ends where a condition was expected`},
		{"leading and", `and type = "track"`, 1, 1, `expected a condition`},
		{"double equals", `type == "track"`, 1, 6, `"==" is not an operator; write "="`},
		{"diamond", `type <> "track"`, 1, 6, `write "!="`},
		{"ampersands", `type = "track" && event = "A"`, 1, 16, `write "and"`},
		{"pipes", `type = "track" || event = "A"`, 1, 16, `write "or"`},
		{"upper-case AND", `type = "track" AND event = "A"`, 1, 16, `keywords are lower case: write "and"`},
		{"upper-case NULL", `userId != NULL`, 1, 11, `write "null"`},
		{"unquoted value", `event = Signup`, 1, 9, `quote text values: event = "Signup"`},
		{"missing value", `event =`, 1, 8, `expected a value`},
		{"missing operator", `event "A"`, 1, 7, `expected an operator`},
		{"value first", `"track" = type`, 1, 1, `a condition starts with a field`},
		{"number exponent", `properties.x = 1e5`, 1, 16, `invalid number "1e5"`},
		{"number trailing dot", `properties.x = 1.`, 1, 16, `invalid number "1."`},
		{"contains without comma", `contains(event "A")`, 1, 16, `expected ","`},
		{"contains bool", `contains(event, true)`, 1, 17, `compares with a quoted string`},
		{"contains unclosed", `contains(event, "A"`, 1, 20, `expected ")"`},
		{"contains no field", `contains("A", "B")`, 1, 10, `takes a field first`},
		{"unexpected char", `type = "track" # comment`, 1, 16, `unexpected character '#'`},
		{"column counts characters", `properties.ü = "x"`, 1, 12, `unexpected character 'ü'`},
		{"second line", "type = \"track\" and\nevent = 'A' or event = 'B'", 2, 13, `mixed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTrigger(tt.trigger)
			te, ok := err.(*TriggerError)
			if !ok {
				t.Fatalf("ParseTrigger(%q) error = %v (%T), want *TriggerError", tt.trigger, err, err)
			}
			if te.Line != tt.line || te.Column != tt.column {
				t.Errorf("position = %d:%d, want %d:%d (%v)", te.Line, te.Column, tt.line, tt.column, te)
			}
			if !strings.Contains(te.Msg, tt.msg) {
				t.Errorf("message = %q, want it to contain %q", te.Msg, tt.msg)
			}
			if !strings.Contains(te.Error(), "column") {
				t.Errorf("Error() = %q lacks the column", te.Error())
			}
		})
	}
}

// TestTriggerString checks the canonical form, including the Segment UI
// conditions of spec §4.5, which are already canonical.
func TestTriggerString(t *testing.T) {
	canonical := []string{
		`type = "track"`,
		`type != "identify"`,
		`event = "Sign Up"`,
		`contains(event, "Order")`,
		`match(properties.url, "https://www.example.com/*")`,
		`match(context.page.url, "https://www.example.com/*")`,
		`!match(context.page.url, "*/thanks")`,
		`properties.revenue > 100`,
		`properties.quantity = 3`,
		`properties.trial = true`,
		`properties.li_fat_id != null`,
		`traits.email = null`,
		`name = "Pricing"`,
		`userId != null`,
		`type = "track" and event = "Sign Up"`,
		`event = "A" or event = "B"`,
		`type = "track" and (event = "Sign Up" or event = "Order Completed")`,
		`properties.q = 'say "hi"'`,
		`properties.x <= -2.5`,
	}
	for _, src := range canonical {
		t.Run(src, func(t *testing.T) {
			if got := MustParseTrigger(src).String(); got != src {
				t.Errorf("got %q, want %q", got, src)
			}
		})
	}
	tests := []struct{ name, in, want string }{
		{"spacing", "type='track'and(event!=\"A\"or  event = 'B')", `type = "track" and (event != "A" or event = "B")`},
		{"redundant parens", `((type = "track"))`, `type = "track"`},
		{"single quotes normalised", `event = 'Sign Up'`, `event = "Sign Up"`},
		{"call spacing", `! contains( event ,"x" )`, `!contains(event, "x")`},
		{"nested kept", `(a.b = 1)`, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := ParseTrigger(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseTrigger(%q) succeeded, want error", tt.in)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tr.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTriggerDepthLimit(t *testing.T) {
	deep := strings.Repeat("(", 500) + `type = "track"` + strings.Repeat(")", 500)
	if !MustParseTrigger(deep).Match(mustParse(t, `{"type":"track"}`)) {
		t.Error("500 levels of parentheses: no match")
	}
	tooDeep := strings.Repeat("(", maxTriggerDepth+1) + `type = "track"` + strings.Repeat(")", maxTriggerDepth+1)
	if _, err := ParseTrigger(tooDeep); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("got %v, want nesting error", err)
	}
}

func TestTriggerMatchDoesNotAllocate(t *testing.T) {
	ev := mustParse(t, trackSignUp)
	tr := MustParseTrigger(`type = "track" and (match(context.page.url, "https://www.example.com/*") or properties.revenue >= 10) and !contains(properties.li_fat_id, "999")`)
	if n := testing.AllocsPerRun(100, func() { tr.Match(ev) }); n != 0 {
		t.Errorf("Match allocates %v times, want 0", n)
	}
}
